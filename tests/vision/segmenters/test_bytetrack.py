"""The box tracker under the lifecycle rules: objects only where detected, at most the cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glave_tasks.config import TrackConfig
from glave_tasks.vision.segmenters.bytetrack import ByteTrackSegmenter
from glave_tasks.vision.types import Detection, VideoFrames


def _video(n: int) -> VideoFrames:
    return VideoFrames("v", [np.zeros((240, 320, 3), np.uint8)] * n, [Path(f"{i}.jpg") for i in range(n)], [0] * n)


def _detections(n: int) -> list[list[Detection]]:
    """Five boxes moving right 4 px per sample, scores 0.9 down to 0.5."""
    return [[Detection((10.0 + 60 * k + 4 * f, 20.0 + 40 * k, 50.0 + 60 * k + 4 * f, 60.0 + 40 * k), 0.9 - 0.1 * k,
                       "person") for k in range(5)] for f in range(n)]


def test_cap_keeps_the_highest_scores_with_stable_ids() -> None:
    dets = _detections(6)
    objects = ByteTrackSegmenter(TrackConfig(max_objects_per_frame=2)).track(_video(6), dets)
    assert [sorted(o.track_id for o in objs) for objs in objects] == [[1, 2]] * 6
    assert all(sorted(o.score for o in objs) == [0.8, 0.9] for objs in objects)


def test_objects_are_reported_only_where_detected() -> None:
    dets = _detections(6)
    dets[3] = dets[3][:2]  # three objects missed on sample 3
    objects = ByteTrackSegmenter(TrackConfig()).track(_video(6), dets)
    counts = [len(o) for o in objects]
    assert counts == [5, 5, 5, 2, 5, 5]
    # A lost track is remembered for re-identification: the missed objects come back with their IDs.
    assert [sorted(o.track_id for o in objs) for objs in objects][4] == [1, 2, 3, 4, 5]
