"""The track lifecycle rules shared by the segmenters: missed detection samples and the cap."""

from __future__ import annotations

from glave_tasks.config import TrackConfig
from glave_tasks.vision.track_lifecycle import TrackMeta, settle_detection_sample, top_scoring


def _tracks(*ids: int) -> dict[int, TrackMeta]:
    return {t: TrackMeta(t, "person", 0.5) for t in ids}


def test_default_follows_the_method_an_unmatched_track_ends_at_once() -> None:
    cfg = TrackConfig()
    assert cfg.max_missed_detections == 0 and cfg.match_iou == 0.8
    tracks = _tracks(1, 2, 3)
    carried, ended = settle_detection_sample(tracks, [2], cfg.max_missed_detections)
    assert (carried, ended) == ([], [1, 3])
    assert list(tracks) == [2] and tracks[2].missed == 0


def test_a_track_is_carried_for_the_allowed_detection_samples_then_ends() -> None:
    tracks = _tracks(1, 2)
    assert settle_detection_sample(tracks, [2], 2) == ([1], [])
    assert settle_detection_sample(tracks, [2], 2) == ([1], [])
    assert tracks[1].missed == 2
    assert settle_detection_sample(tracks, [2], 2) == ([], [1])
    assert list(tracks) == [2]


def test_a_match_resets_the_missed_count() -> None:
    tracks = _tracks(1)
    settle_detection_sample(tracks, [], 1)
    assert tracks[1].missed == 1
    settle_detection_sample(tracks, [1], 1)
    assert tracks[1].missed == 0
    assert settle_detection_sample(tracks, [], 1) == ([1], [])


def test_the_cap_keeps_the_highest_scores_in_their_order() -> None:
    assert top_scoring([0.2, 0.9, 0.5, 0.9, 0.1], 3) == [1, 2, 3]
    assert top_scoring([0.4, 0.4, 0.4], 2) == [0, 1]  # ties: the earlier one
    assert top_scoring([0.3], 5) == [0]
    assert top_scoring([], 1) == []
