"""``glave run`` on one machine: one worker pool for the run, the shards of pooled stages side by
side, failures per shard, outcomes in shard order."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

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
