"""Caption and bridge stages with the rules engine (the embedded default) on synthetic videos.

Upstream ingest/track shards are seeded from the videos' ground truth, so the captions can be
checked against what is known to be in the video: which objects, with which IDs, moving where.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from glave_tasks.run import Run
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed
from tests.support.seed import merge_tables, seed_committed, upstream_from_truth

RUN = "r-caption"


def _seed(store: ArtifactStore, config, tmp_path: Path, videos: dict[str, synthetic.GroundTruth], **kw) -> None:
    ingest, track, files = [], [], {}
    for vid, gt in videos.items():
        i, t, f = upstream_from_truth(RUN, 0, vid, gt, **kw.get(vid, {}))
        ingest.append(i), track.append(t), files.update(f)
    seed_committed(store, config, RUN, 0, "ingest", merge_tables(*ingest), files)
    seed_committed(store, config, RUN, 0, "track", merge_tables(*track))


@pytest.fixture
def shard(store: ArtifactStore, config, tmp_path: Path) -> ArtifactStore:
    videos = {
        "twoshot": synthetic.two_shot_video(tmp_path / "two.mp4"),
        "static": synthetic.static_video(tmp_path / "static.mp4"),
        "single": synthetic.two_shot_video(tmp_path / "single.mp4"),
    }
    _seed(store, config, tmp_path, videos, single={"max_keyframes": 1})
    return store


def _rows(store: ArtifactStore, stage: str, table: str) -> list[dict]:
    return store.read_table(Committed(store, RUN).table(stage, 0, table)).to_pylist()


def test_rules_captions_name_the_objects_and_motions_of_the_ground_truth(shard: ArtifactStore, config) -> None:
    out = run_stage(build_stage("caption", config), shard, RUN, 0, show_progress=False)
    assert out.status == "committed" and out.marker["videos_failed"] == 0
    overview = {r["video_id"]: r for r in _rows(shard, "caption", "overviews")}
    text = overview["twoshot"]["overview_caption"]
    # Ground truth: box 1 moves right, disc 2 moves down, then after the cut box 3 moves left.
    for said in ("the box (ID=1) moves right", "the disc (ID=2) moves down", "the box (ID=3) moves left"):
        assert said.lower() in text.lower()
    sentences = [s for s in re.split(r"(?<=\])\s+", text) if s]
    assert all(re.search(r"\[\d+ - \d+\]$", s) for s in sentences), "every sentence carries a keyframe range"
    assert "Shot 2 of 2" in text

    local = [r for r in _rows(shard, "caption", "local_captions") if r["video_id"] == "twoshot"]
    n_kf = 10  # 6 s + 4 s at one keyframe per second
    for stream in ("different", "attention", "merged"):
        assert sorted(r["keyframe_index"] for r in local if r["stream"] == stream) == list(range(n_kf))
    by = {(r["stream"], r["keyframe_index"]): r["text"] for r in local}
    # The first keyframe has no differential call; as in the method's records, its "different"
    # entry repeats the attention caption.
    assert by[("different", 0)] == by[("attention", 0)] == by[("merged", 0)]
    assert "(ID=1)" in by[("attention", 0)] and "(ID=2)" in by[("attention", 0)]
    assert "The box (ID=1) moves right" in by[("different", 1)]
    assert "The disc (ID=2) moves down" in by[("different", 1)]
    assert "The shot cuts between keyframe 5 and keyframe 6" in by[("different", 6)]
    assert by[("merged", 3)].startswith(by[("different", 3)])
    assert all(r["generator"] == "rules" and r["model_id"] == "rules-1" for r in local)
    assert {r["prompt_version"] for r in local if r["stream"] == "attention"} == {"attention@2"}

    static = overview["static"]["overview_caption"]
    assert "shows no tracked object" in static and "(ID=" not in static
    assert out.marker["metrics"]["requests_overview"] == 3
    assert out.marker["metrics"]["engine_calls"] == 3, "three dependency levels, one engine call each"


def test_bridge_splits_scenes_at_cuts_and_joins_scene_captions(shard: ArtifactStore, config) -> None:
    run_stage(build_stage("caption", config), shard, RUN, 0, show_progress=False)
    out = run_stage(build_stage("bridge", config), shard, RUN, 0, show_progress=False)
    assert out.marker["videos_failed"] == 0
    scenes = _rows(shard, "bridge", "scenes")
    two = sorted((r for r in scenes if r["video_id"] == "twoshot"), key=lambda r: r["scene_index"])
    assert [(r["frame_start"], r["frame_end"]) for r in two] == [(0, 5), (6, 9)]
    assert all("(ID=" not in r["caption"] for r in scenes), "ID tags are stripped from scene captions"
    assert "the box moves left" in two[1]["caption"].lower()
    single = [r for r in scenes if r["video_id"] == "single"]
    assert [(r["frame_start"], r["frame_end"]) for r in single] == [(0, 0)]
    static = [r for r in scenes if r["video_id"] == "static"]
    assert len(static) == 1 and "no tracked object" in static[0]["caption"]
    videos = {r["video_id"]: r for r in _rows(shard, "bridge", "video_captions")}
    assert videos["twoshot"]["num_scenes"] == 2
    assert videos["twoshot"]["caption"] == "\n".join(r["caption"] for r in two)
    assert all(r["generator"] == "rules" for r in videos.values())
    # Scene captions go in rounds: round 1 holds scene 1 of the only video that has one.
    assert out.marker["metrics"]["requests_scene_caption"] == 4
    assert out.marker["metrics"]["engine_calls"] == 3  # split + two rounds


def test_rerun_with_same_fingerprint_is_a_no_op_and_prompt_versions_are_fingerprinted(shard, config) -> None:
    stage = build_stage("caption", config)
    assert stage.prompt_versions()["overview"] == "overview@2"
    assert stage.resources().gpus == 0
    run_stage(stage, shard, RUN, 0, show_progress=False)
    assert run_stage(build_stage("caption", config), shard, RUN, 0, show_progress=False).status == "skipped"
    assert Run(shard, RUN).commit("caption", 0)["prompts"]["merge"] == "merge@2"
