"""The stage contract: idempotent shards (fingerprint in a commit marker written last), per-video
failure isolation, a failure-ratio gate, and readers that trust only committed shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from glave_tasks.config import GlaveConfig, load_config
from glave_tasks.contract import ShardContext, Stage
from glave_tasks.discover import discover
from glave_tasks.errors import GlaveError, ShardFailed, UpstreamNotReady, VideoFailure
from glave_tasks.layout import RunLayout
from glave_tasks.run import Run
from glave_tasks.runner import run_stage
from glave_tasks.store import ArtifactStore

RUN = "r1"


class Upstream(Stage):
    """Writes one probes row per video; fails or crashes on planted file names."""

    name: ClassVar[str] = "upstream"
    outputs: ClassVar[tuple[str, ...]] = ("probes",)
    config_sections: ClassVar[tuple[str, ...]] = ("run", "ingest")

    def __init__(self, config: GlaveConfig, fail: tuple[str, ...] = (), crash: tuple[str, ...] = (),
                 explode: bool = False) -> None:
        super().__init__(config)
        self.fail, self.crash, self.explode = fail, crash, explode
        self.calls = 0

    def process(self, ctx: ShardContext) -> None:
        self.calls += 1
        if self.explode:
            raise RuntimeError("the model server went away")
        rows: list[dict[str, Any]] = []
        for v in ctx.videos:
            with ctx.guard(v.video_id):
                if v.file_name in self.fail:
                    raise VideoFailure("corrupt", f"planted failure for {v.file_name}")
                if v.file_name in self.crash:
                    raise ZeroDivisionError("planted bug")
                ctx.put_bytes(b"frame", v.video_id, f"attempt-{self.calls}.jpg")
                rows.append({"video_id": v.video_id, "duration_s": 1.0, "fps": 10.0, "width": 8, "height": 8,
                             "codec": "h264", "has_audio": False, "frames_decoded": 10, "first_content_s": 0.0})
        ctx.write("probes", rows)


class Downstream(Stage):
    name: ClassVar[str] = "downstream"
    needs: ClassVar[tuple[str, ...]] = ("upstream",)
    outputs: ClassVar[tuple[str, ...]] = ("cuts",)

    def __init__(self, config: GlaveConfig) -> None:
        super().__init__(config)
        self.seen: list[str] = []
        self.read_ids: list[str] = []

    def process(self, ctx: ShardContext) -> None:
        self.seen = sorted(v.video_id for v in ctx.videos)
        self.read_ids = sorted(ctx.read("upstream", "probes")["video_id"].to_pylist())
        ctx.write("cuts", [])


def make_config(tmp_path: Path, **run: Any) -> GlaveConfig:
    return load_config(environ={}, overrides={
        "store": {"root": str(tmp_path / "store"), "local_cache": str(tmp_path / "cache")},
        "run": {"shard_size": 10, **run},
    })


@pytest.fixture
def names(tmp_path: Path) -> list[str]:
    d = tmp_path / "inbox"
    d.mkdir()
    out = []
    for i in range(4):
        (d / f"v{i}.mp4").write_bytes(f"video {i}".encode())
        out.append(f"v{i}.mp4")
    return out


def plan(store: ArtifactStore, config: GlaveConfig, tmp_path: Path) -> dict[str, str]:
    discover(store, config, str(tmp_path / "inbox"), RUN)
    return {r["file_name"]: r["video_id"] for r in store.read_table(RunLayout(RUN).videos_table).to_pylist()}


def table(store: ArtifactStore, stage: str, name: str) -> list[dict[str, Any]]:
    """A committed shard's table, from the attempt its marker names."""
    run = Run(store, RUN)
    marker = run.commit(stage, 0)
    assert marker is not None, f"{stage} shard 0 is not committed"
    return store.read_table(run.table_key(stage, 0, name, marker)).to_pylist()


def test_same_fingerprint_is_a_no_op(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    stage = Upstream(config)
    first = run_stage(stage, store, RUN, 0, show_progress=False)
    again = run_stage(stage, store, RUN, 0, show_progress=False)
    assert (first.status, again.status, stage.calls) == ("committed", "skipped", 1)
    assert again.marker == first.marker
    assert len(table(store, "upstream", "probes")) == 4


def test_force_redoes_and_overwrites_without_duplicates(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    stage = Upstream(config)
    run_stage(stage, store, RUN, 0, show_progress=False)
    forced = run_stage(stage, store, RUN, 0, force=True, show_progress=False)
    assert forced.status == "committed" and stage.calls == 2
    assert len(table(store, "upstream", "probes")) == 4
    # Only the committed attempt's files remain: the first attempt's folder is gone.
    files = [k for k in store.list(RunLayout(RUN).shard_prefix("upstream", 0)) if "/files/" in k]
    marker = forced.marker
    assert len(files) == 4 and all(f.endswith("attempt-2.jpg") and f"/{marker['attempt']}/files/" in f for f in files)
    assert sorted(marker["artifacts"]) == sorted(["errors.parquet", "probes.parquet",
                                                  *(f[f.index("files/"):] for f in files)])


def test_a_commit_whose_answer_was_lost_still_counts(store: ArtifactStore, tmp_path: Path, names: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A marker create that landed but whose answer was lost (a 503 after the write) is retried and
    finds a marker: its own, byte for byte, so the attempt is committed, not dropped."""
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    real_create = store.create_if_absent

    def create_then_lose_the_answer(key: str, data: bytes) -> bool:
        landed = real_create(key, data)
        return False if key.endswith("_COMMIT.json") and landed else landed

    monkeypatch.setattr(store, "create_if_absent", create_then_lose_the_answer)
    outcome = run_stage(Upstream(config), store, RUN, 0, show_progress=False)
    assert outcome.status == "committed"
    assert Run(store, RUN).commit("upstream", 0) == outcome.marker


def test_a_commit_found_from_another_writer_drops_this_attempt(store: ArtifactStore, tmp_path: Path,
                                                               names: list[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    real_create = store.create_if_absent

    def other_writer_first(key: str, data: bytes) -> bool:
        if key.endswith("_COMMIT.json"):
            real_create(key, data.replace(b'"attempt"', b'"other_attempt"', 1))
        return real_create(key, data)

    monkeypatch.setattr(store, "create_if_absent", other_writer_first)
    with pytest.raises(GlaveError, match="another writer committed it first"):
        run_stage(Upstream(config), store, RUN, 0, show_progress=False)


def test_changed_config_redoes_and_unrelated_config_does_not(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    first = run_stage(Upstream(config), store, RUN, 0, show_progress=False)
    unrelated = config.model_copy(deep=True)
    unrelated.track.match_iou = 0.5  # not a section this stage declares
    assert run_stage(Upstream(unrelated), store, RUN, 0, show_progress=False).status == "skipped"
    changed = config.model_copy(deep=True)
    changed.ingest.similarity_threshold = 0.8
    redo = run_stage(Upstream(changed), store, RUN, 0, show_progress=False)
    assert redo.status == "committed" and redo.marker["fingerprint"] != first.marker["fingerprint"]
    assert len(table(store, "upstream", "probes")) == 4


def test_per_video_failures_are_recorded_and_excluded_downstream(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    ids = plan(store, config, tmp_path)
    up = run_stage(Upstream(config, fail=("v1.mp4",), crash=("v2.mp4",)), store, RUN, 0, show_progress=False)
    assert up.status == "committed"
    assert up.marker["failures"] == {"corrupt": 1, "internal_error": 1}
    errors = {e["video_id"]: e for e in table(store, "upstream", "errors")}
    assert errors[ids["v1.mp4"]]["reason"] == "corrupt" and "planted failure" in errors[ids["v1.mp4"]]["detail"]
    assert errors[ids["v2.mp4"]]["reason"] == "internal_error" and "ZeroDivisionError" in errors[ids["v2.mp4"]]["detail"]
    assert all(e["stage"] == "upstream" and e["run_id"] == RUN and e["shard"] == 0 for e in errors.values())
    ok = sorted([ids["v0.mp4"], ids["v3.mp4"]])
    assert sorted(up.marker["videos_ok"]) == ok
    down = Downstream(config)
    run_stage(down, store, RUN, 0, show_progress=False)
    assert down.seen == ok and down.read_ids == ok


def test_shard_fails_only_past_max_failure_ratio(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path, max_failure_ratio=0.25)
    plan(store, config, tmp_path)
    at_limit = run_stage(Upstream(config, fail=("v0.mp4",)), store, RUN, 0, show_progress=False)
    assert at_limit.status == "committed"  # 1/4 == 0.25 is tolerated
    with pytest.raises(ShardFailed, match="2/4 videos failed"):
        run_stage(Upstream(config, fail=("v0.mp4", "v1.mp4")), store, RUN, 0, force=True, show_progress=False)
    layout = RunLayout(RUN)
    assert Run(store, RUN).commit("upstream", 0) is None
    assert store.read_json(layout.failed("upstream", 0))["reason"] == "failure_ratio"
    assert Run(store, RUN).status(["upstream"])["stages"]["upstream"]["shards"][0]["state"] == "failed"
    with pytest.raises(UpstreamNotReady):
        run_stage(Downstream(config), store, RUN, 0, show_progress=False)


def test_a_crashing_stage_leaves_no_commit_and_a_failure_marker(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    run_stage(Upstream(config), store, RUN, 0, show_progress=False)
    with pytest.raises(RuntimeError, match="went away"):
        run_stage(Upstream(config, explode=True), store, RUN, 0, force=True, show_progress=False)
    assert Run(store, RUN).commit("upstream", 0) is None
    assert store.read_json(RunLayout(RUN).failed("upstream", 0))["reason"] == "crashed"
    # A later good attempt commits and clears the failure.
    assert run_stage(Upstream(config), store, RUN, 0, show_progress=False).status == "committed"
    assert not store.exists(RunLayout(RUN).failed("upstream", 0))


def test_readers_trust_only_committed_shards(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    # Output of an attempt that never committed (killed before its marker) is not an input.
    store.write_bytes(RunLayout(RUN).table("upstream", 0, "probes"), b"half written")
    with pytest.raises(UpstreamNotReady, match="upstream shard 0 .* not committed"):
        run_stage(Downstream(config), store, RUN, 0, show_progress=False)
    assert Run(store, RUN).status(["upstream"])["stages"]["upstream"]["shards"][0]["state"] == "missing"


def test_upstream_change_redoes_downstream(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    plan(store, config, tmp_path)
    run_stage(Upstream(config), store, RUN, 0, show_progress=False)
    assert run_stage(Downstream(config), store, RUN, 0, show_progress=False).status == "committed"
    assert run_stage(Downstream(config), store, RUN, 0, show_progress=False).status == "skipped"
    changed = config.model_copy(deep=True)
    changed.ingest.dense_interval_s = 1.0
    run_stage(Upstream(changed), store, RUN, 0, show_progress=False)
    assert run_stage(Downstream(config), store, RUN, 0, show_progress=False).status == "committed"


def test_unknown_shard_and_missing_run_are_user_errors(store: ArtifactStore, tmp_path: Path, names: list[str]) -> None:
    config = make_config(tmp_path)
    with pytest.raises(GlaveError, match="no manifest"):
        run_stage(Upstream(config), store, RUN, 0, show_progress=False)
    plan(store, config, tmp_path)
    with pytest.raises(GlaveError, match="no shard 7"):
        run_stage(Upstream(config), store, RUN, 7, show_progress=False)
