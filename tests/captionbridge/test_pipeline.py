"""Caption and bridge after the real ingest and track stages, on a synthetic video (rules engine)."""

from __future__ import annotations

from pathlib import Path

from glave_tasks.layout import RunLayout
from glave_tasks.local_run import run_pipeline
from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed


def test_real_upstream_stages_feed_captions_that_follow_the_tracks(tmp_path: Path, config) -> None:
    videos = tmp_path / "in"
    videos.mkdir()
    synthetic.two_shot_video(videos / "two.mp4")
    store = ArtifactStore(config.store.root, cache_dir=tmp_path / "cache")
    result = run_pipeline(store, config, str(videos), "r-e2e", stages=["ingest", "track", "caption", "bridge"],
                          show_progress=False)
    assert not result["failed"], result["failed"]
    layout = RunLayout("r-e2e")

    def rows(stage: str, table: str) -> list[dict]:
        return store.read_table(Committed(store, layout.run_id).table(stage, 0, table)).to_pylist()

    tracks = rows("track", "tracks")
    keyframes = rows("ingest", "keyframes")
    cuts = rows("ingest", "cuts")
    overview = rows("caption", "overviews")[0]["overview_caption"]
    for tid in {t["track_id"] for t in tracks}:
        assert f"(ID={tid})" in overview, f"track {tid} is named in the overview"
    assert overview.count("Shot ") == len(cuts) + 1
    local = rows("caption", "local_captions")
    assert len(local) == 3 * len(keyframes)
    assert all(r["generator"] == "rules" for r in local)
    scenes = sorted(rows("bridge", "scenes"), key=lambda s: s["scene_index"])
    starts = {s["frame_start"] for s in scenes}
    assert {c["keyframe_index"] for c in cuts} <= starts, "every shot cut starts a scene"
    assert scenes[-1]["frame_end"] == len(keyframes) - 1
    caption = rows("bridge", "video_captions")[0]
    assert caption["num_scenes"] == len(scenes) and "(ID=" not in caption["caption"]
