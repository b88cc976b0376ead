"""``glave run`` on one machine: one worker pool for the run, the shards of pooled stages side by
side, failures per shard, outcomes in shard order."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.local_run import run_pipeline
from glave_tasks.store import ArtifactStore
from tests.support import make_config, synthetic


def _interval(marker: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(marker["started_at"]), datetime.fromisoformat(marker["finished_at"])


def test_one_video_shards_of_ingest_and_track_run_side_by_side(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        synthetic.long_video(inbox / f"v{i}.mp4", seconds=6.0 + i, width=320, height=180)
    (inbox / "broken.mp4").write_bytes(b"not a video at all")
    config = make_config(tmp_path, run={"shard_size": 1})
    store = ArtifactStore(config.store.root)
    result = run_pipeline(store, config, str(inbox), "r-side", stages=["ingest", "track"], show_progress=False)

    shards = result["shards"]
    assert len(shards) == 4
    for stage in ("ingest", "track"):
        outcomes = [o for o in result["outcomes"] if o["stage"] == stage]
        assert [o["shard"] for o in outcomes] == sorted(o["shard"] for o in outcomes)  # shard order
        spans = [_interval(store.read_json(f"runs/r-side/{stage}/shard-{s:05d}/_COMMIT.json")) for s in
                 [o["shard"] for o in outcomes if o["status"] == "committed"]]
        # Some two shards were being processed at the same moment.
        assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:]), stage
    # The corrupt file is its shard's one video: ingest records it and that shard fails alone;
    # track then has no committed upstream there, and every other shard is committed.
    failed = {(f["stage"], f["shard"]) for f in result["failed"]}
    assert len({s for _, s in failed}) == 1
    committed = {(o["stage"], o["shard"]) for o in result["outcomes"] if o["status"] == "committed"}
    assert len(committed) == 6


def _never_ready_server(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for the model server's interpreter: it records its pid and never becomes ready."""
    pid_file = tmp_path / "server.pid"
    script = tmp_path / "server-python"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    script.chmod(0o755)
    return script, pid_file


def test_a_run_that_stops_before_its_engine_stages_cancels_the_model_servers_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server starts with the run (its start-up overlaps ingest and track); when the run ends
    first, its start is cancelled and its process is gone, well before the start-up timeout."""
    import glave_tasks.local_run as local_run

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=2.0)
    python, pid_file = _never_ready_server(tmp_path)
    config = make_config(tmp_path, engine={"backend": "vllm", "model": "tiny"},
                         model_server={"python": str(python), "startup_timeout_s": 600, "device": "cpu"})

    def ingest_crashes(stage: Any, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # the server was launched before the first stage ran out
        raise RuntimeError(f"{stage.name} crashed")

    monkeypatch.setattr(local_run, "run_stage", ingest_crashes)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="ingest crashed"):
        run_pipeline(ArtifactStore(config.store.root), config, str(inbox), "r-cancel",
                     stages=["ingest", "caption"], show_progress=False)
    assert time.monotonic() - started < 60
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
