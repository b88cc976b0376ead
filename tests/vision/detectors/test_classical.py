"""The classical CPU detector at its working sizes: people found by HOG on a coarse pyramid, moving
objects found by a background model run below the frame's resolution, with boxes and masks at
the frame's size, and the earlier (finer, costlier) settings still reachable by config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from glave_tasks.config import DetectorConfig, TrackConfig
from glave_tasks.vision.detectors.classical import MOTION_LABEL, ClassicalDetector, box_iou
from glave_tasks.vision.frame_loading import load_frames
from glave_tasks.vision.types import VideoFrames
from tests.support import synthetic
from tests.support.track_media import sample_jpegs

EARLIER = {"hog_scale": 1.05, "hog_group_threshold": 2, "hog_max_side": 640, "motion_max_side": 640}


def _detector(**settings: object) -> ClassicalDetector:
    return ClassicalDetector(TrackConfig().detector.model_copy(update=settings))


def _bus_photo() -> np.ndarray:
    """A real street photo with people (shipped with ultralytics), at 640 px like a dense sample."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "bus.jpg"
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    k = 640 / max(bgr.shape[:2])
    small = cv2.resize(bgr, (round(bgr.shape[1] * k), round(bgr.shape[0] * k)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def test_defaults_are_the_fast_settings() -> None:
    cfg = DetectorConfig()
    assert (cfg.hog_scale, cfg.hog_group_threshold, cfg.hog_max_side, cfg.motion_max_side) == (1.25, 0, 512, 320)


def test_coarse_pyramid_still_finds_the_person_the_fine_one_finds() -> None:
    """The man on the left of the bus photo (about 170x370 px at 640 px high). OpenCV's grouping
    needs 3 agreeing windows, which a 1.25 pyramid step does not give: with it the person is
    lost, so the default leaves grouping to non-maximum suppression. (The default also finds the
    man in the middle, which the earlier settings miss.)"""
    image = _bus_photo()
    video = VideoFrames("bus", [image], [Path("bus.jpg")], [0])
    person = (0.0, 195.0, 167.0, 570.0)

    def people(**settings: object) -> list[tuple[float, ...]]:
        return [d.box for d in _detector(**settings).detect(video)[0] if d.label == "person"]

    earlier, default = people(**EARLIER), people()
    assert any(box_iou(b, person) >= 0.7 for b in earlier), earlier
    assert any(box_iou(b, person) >= 0.7 for b in default), default
    assert len(earlier) <= len(default) <= 2  # no flood of ungrouped windows
    assert people(hog_group_threshold=2) == []  # coarse pyramid with OpenCV's grouping: lost


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoFrames, dict[int, dict[int, tuple[int, int, int, int]]]]:
    """10 s of two moving objects at 640x360, sampled every 0.5 s as ingest does."""
    root = tmp_path_factory.mktemp("moving")
    gt = synthetic.long_video(root / "long.mp4", seconds=10.0, fps=10)
    sample = sample_jpegs(root / "long.mp4", root / "frames", interval_s=0.5)
    video = load_frames("long", sample.paths, sample.timestamps, [])
    return video, {i: gt.boxes.get(f, {}) for i, f in enumerate(sample.frame_indices)}


def _recall(video: VideoFrames, gt: dict[int, dict[int, tuple[int, int, int, int]]], **settings: object) -> float:
    found = _detector(**settings).detect(video)
    total = hit = 0
    for dets, boxes in zip(found, gt.values()):
        for box in boxes.values():
            total += 1
            hit += any(d.label == MOTION_LABEL and box_iou(box, d.box) >= 0.5 for d in dets)
        for d in dets:
            assert d.mask is not None and d.mask.shape == (360, 640)
            ys, xs = np.nonzero(d.mask)
            assert xs.min() >= d.box[0] - 1 and xs.max() < d.box[2] + 1
            assert ys.min() >= d.box[1] - 1 and ys.max() < d.box[3] + 1
    assert total >= 30
    return hit / total


Boxes = dict[int, dict[int, tuple[int, int, int, int]]]


def test_background_model_below_frame_size_finds_moving_objects(moving: tuple[VideoFrames, Boxes]) -> None:
    """Recall of the ground-truth boxes at IoU >= 0.5 at 320 px is within 0.1 of that at 640 px,
    and the masks come back at the frame's size, inside their boxes. (Both miss the samples
    where the slow disc covers mostly the same pixels as in most of the shot: measured 0.65 and
    0.7 on this video.)"""
    video, gt = moving
    default, earlier = _recall(video, gt), _recall(video, gt, **EARLIER)
    assert earlier >= 0.6 and default >= earlier - 0.1, (default, earlier)
