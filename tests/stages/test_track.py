"""The track stage on the CPU default (classical detector + BYTETracker), after the real ingest:
tracks with stable IDs against synthetic ground truth, Set-of-Mark outputs per keyframe, empty
but committed results for videos without objects, and the stage's declared needs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from glave_tasks import schemas
from glave_tasks.config import GlaveConfig, load_config
from glave_tasks.discover import discover
from glave_tasks.layout import RunLayout
from glave_tasks.run import Run
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage, stage_class
from glave_tasks.store import ArtifactStore
from glave_tasks.vision import rle
from tests.support import BIG_BUCK_BUNNY, synthetic
from tests.support.committed import Committed
from tests.support.seed import recommit
from tests.support.track_media import score_tracks

RUN = "track-run"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, GlaveConfig, dict, dict]:
    """Ingest + track over one shard: the two-shot video, a static video and Big Buck Bunny."""
    root = tmp_path_factory.mktemp("track")
    inbox = root / "inbox"
    inbox.mkdir()
    gt = synthetic.two_shot_video(inbox / "two_shot.mp4")
    synthetic.static_video(inbox / "static.mp4")
    shutil.copy(BIG_BUCK_BUNNY, inbox / "bbb.mp4")
    config = load_config(environ={}, overrides={"store": {"root": str(root / "store"), "local_cache": str(root / "cache")}})
    store = ArtifactStore(config.store.root)
    manifest = discover(store, config, str(inbox), RUN)
    assert manifest["shards"] == [0]
    run_stage(build_stage("ingest", config), store, RUN, 0, show_progress=False)
    outcome = run_stage(build_stage("track", config), store, RUN, 0, show_progress=False)
    videos = {r["file_name"]: r["video_id"] for r in store.read_table(RunLayout(RUN).videos_table).to_pylist()}
    return store, config, {"gt": gt, "videos": videos}, outcome.marker


def _rows(store: ArtifactStore, table: str, video_id: str) -> list[dict]:
    data = store.read_table(Committed(store, RUN).table("track", 0, table), schemas.TABLES[table])
    return data.filter(pc.equal(data["video_id"], video_id)).to_pylist()


def test_stage_is_declared_and_registered(config: GlaveConfig) -> None:
    cls = stage_class("track")
    assert (cls.name, cls.family, cls.needs, cls.outputs) == ("track", "vision", ("ingest",), ("tracks", "marks"))
    stage = cls(config)
    assert stage.resources().gpus == 0  # the classical default is CPU-only
    prod = cls(load_config(environ={}, overrides={"track": {
        "detector": {"backend": "ultralytics", "weights": "s3://models/yolo.pt"},
        "segmenter": {"backend": "sam2", "checkpoint": "s3://models/sam2.pt"}}}))
    assert prod.resources().gpus == 1
    assert prod.model_ids() == {"detector": "s3://models/yolo.pt",
                                "segmenter": "configs/sam2.1/sam2.1_hiera_t.yaml@s3://models/sam2.pt"}


def test_two_shot_tracks_meet_recall_and_id_switch_thresholds(tracked) -> None:
    """Recall >= 0.9 and no ID switch on the synthetic two-shot video.

    Why these thresholds: the three objects move 10-17 px per 0.5 s sample on a still, textured
    background, so per-shot MOG2 finds every one of them from the first sample on; the only
    misses are samples where a slow object sits over the same pixels for most of the shot
    (measured recall 0.97). IDs: objects never cross or occlude, so any switch is a tracker bug;
    three ground-truth objects must map to exactly three track IDs (the cut ends shot 1's tracks).
    """
    store, _, info, _ = tracked
    rows = _rows(store, "tracks", info["videos"]["two_shot.mp4"])
    predicted: dict[int, list] = {}
    for r in rows:
        predicted.setdefault(r["frame_index"], []).append((r["track_id"], (r["x1"], r["y1"], r["x2"], r["y2"])))
    gt = info["gt"]
    sampled = {f: b for f, b in gt.boxes.items() if f % 5 == 0}
    score = score_tracks(sampled, predicted)
    assert score.recall >= 0.9, score
    assert score.id_switches == 0, score
    assert score.false_tracks <= 1, score
    assert len({r["track_id"] for r in rows}) <= 4
    assert {r["backend"] for r in rows} == {"classical+bytetrack"}
    assert all(r["model_id"].startswith("opencv-") for r in rows)


def test_track_masks_are_rle_inside_their_boxes(tracked) -> None:
    store, _, info, _ = tracked
    rows = _rows(store, "tracks", info["videos"]["two_shot.mp4"])
    assert rows
    for r in rows:
        mask = rle.decode(r["mask"])
        assert mask.shape == (240, 320)
        ys, xs = np.nonzero(mask)
        assert xs.min() >= r["x1"] - 1 and xs.max() < r["x2"] + 1 and ys.min() >= r["y1"] - 1 and ys.max() < r["y2"] + 1


def test_every_keyframe_gets_box_json_and_a_marked_frame(tracked) -> None:
    store, _, info, _ = tracked
    vid = info["videos"]["two_shot.mp4"]
    keyframes = store.read_table(Committed(store, RUN).table("ingest", 0, "keyframes")).to_pylist()
    marks = _rows(store, "marks", vid)
    assert [m["keyframe_index"] for m in marks] == sorted(k["keyframe_index"] for k in keyframes if k["video_id"] == vid)
    tracks = _rows(store, "tracks", vid)
    for m in marks:
        boxes = json.loads(m["boxes_json"])
        assert sorted(int(k) for k in boxes) == m["object_ids"]
        assert all(set(b) == {"x1", "y1", "x2", "y2"} for b in boxes.values())
        assert all(b["x2"] - b["x1"] >= 16 and b["y2"] - b["y1"] >= 16 for b in boxes.values())
        assert store.read_bytes(m["marked_image_key"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(m["object_ids"] for m in marks)
    assert {i for m in marks for i in m["object_ids"]} <= {r["track_id"] for r in tracks}


def test_static_video_commits_an_empty_result(tracked) -> None:
    store, _, info, marker = tracked
    vid = info["videos"]["static.mp4"]
    assert vid in marker["videos_ok"]
    assert _rows(store, "tracks", vid) == []
    marks = _rows(store, "marks", vid)
    assert marks and all(m["object_ids"] == [] and m["boxes_json"] == "{}" for m in marks)


def test_big_buck_bunny_smoke(tracked) -> None:
    """The real clip goes through: valid rows, consistent labels per track, marks for every keyframe."""
    store, _, info, marker = tracked
    vid = info["videos"]["bbb.mp4"]
    assert vid in marker["videos_ok"] and marker["videos_failed"] == 0
    rows = _rows(store, "tracks", vid)
    for r in rows:
        assert 0 <= r["x1"] < r["x2"] <= 1024 and 0 <= r["y1"] < r["y2"] <= 576
        assert rle.area(r["mask"]) > 0
    labels: dict[int, set] = {}
    for r in rows:
        labels.setdefault(r["track_id"], set()).add(r["label"])
    assert all(len(v) == 1 for v in labels.values())
    assert _rows(store, "marks", vid)
    assert marker["metrics"]["frames"] > 0 and "detect_s" in marker["metrics"]


def test_rerun_with_same_inputs_is_skipped(tracked) -> None:
    store, config, _, marker = tracked
    again = run_stage(build_stage("track", config), store, RUN, 0, show_progress=False)
    assert again.status == "skipped" and again.marker["fingerprint"] == marker["fingerprint"]


def test_unreadable_frame_fails_only_that_video(tracked, tmp_path: Path) -> None:
    store, config, info, _ = tracked
    vid = info["videos"]["static.mp4"]
    dense = store.read_table(Committed(store, RUN).table("ingest", 0, "dense_frames")).to_pylist()
    key = next(r["image_key"] for r in dense if r["video_id"] == vid)
    original = store.read_bytes(key)
    store.write_bytes(key, b"not a jpeg")
    recommit(store, RUN, "ingest", 0)  # committed so: the bytes ingest stored do not decode
    try:
        outcome = run_stage(build_stage("track", config), store, RUN, 0, force=True, show_progress=False)
    finally:
        store.write_bytes(key, original)
        recommit(store, RUN, "ingest", 0)
    assert outcome.marker["failures"] == {"frame_unreadable": 1}
    assert vid not in outcome.marker["videos_ok"] and len(outcome.marker["videos_ok"]) == 2
    run_stage(build_stage("track", config), store, RUN, 0, force=True, show_progress=False)
    assert Run(store, RUN).commit("track", 0)["videos_failed"] == 0


_IMPORTED = """
import importlib, json, sys
from pathlib import Path
import numpy as np
from glave_tasks.config import load_config
from glave_tasks.stages import build_stage, stage_class
from glave_tasks.vision.types import Detection, VideoFrames

before = set(sys.modules)
if sys.argv[1] == "warm":
    for module in stage_class("track").warm_imports:
        importlib.import_module(module)
else:  # the default backends at work: detect, then track boxes
    stage = build_stage("track", load_config(environ={}))
    stage.setup()
    video = VideoFrames("v", [np.zeros((240, 320, 3), np.uint8)] * 4, [Path(f"{i}.jpg") for i in range(4)], [0] * 4)
    stage.detector.detect(video)
    stage.segmenter.track(video, [[Detection((10.0 + 4 * f, 20.0, 50.0 + 4 * f, 60.0), 0.9, "person")] for f in range(4)])
print(json.dumps(sorted({m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names))))
"""


def test_warm_imports_cover_what_the_default_backends_import_at_work() -> None:
    """A run's idle pool workers and the warm launcher import ``warm_imports``: every library the
    CPU default (classical detector, BYTETracker) loads while it works is among them."""
    import subprocess
    import sys

    def libraries(mode: str) -> set[str]:
        out = subprocess.run([sys.executable, "-c", _IMPORTED, mode], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return set(json.loads(out.stdout.strip().splitlines()[-1]))

    at_work = libraries("work")
    assert {"cv2", "ultralytics", "torch"} <= at_work
    assert at_work <= libraries("warm")
