"""Shot cuts: the detector's frame scores are PySceneDetect's ContentDetector scores, bit for bit,
and the cuts map onto keyframes."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector
from scenedetect.stats_manager import StatsManager

from glave_tasks.media.cuts import CutDetector, _ContentDetector, map_cuts
from glave_tasks.media.frame_sampling import analysis_size
from tests.support import BIG_BUCK_BUNNY, synthetic


def analysis_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        w, h = analysis_size(stream.codec_context.width, stream.codec_context.height)
        return [cv2.resize(f.to_ndarray(format="bgr24"), (w, h), interpolation=cv2.INTER_LINEAR)
                for f in container.decode(stream)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    d = tmp_path_factory.mktemp("cuts")
    synthetic.two_shot_video(d / "two_shot.mp4")
    synthetic.two_shot_video(d / "blank_lead.mp4", blank_s=1.0)
    return {name: analysis_frames(d / f"{name}.mp4") for name in ("two_shot", "blank_lead")} | {
        "bunny": analysis_frames(BIG_BUCK_BUNNY)}


@pytest.mark.parametrize("name", ["bunny", "two_shot", "blank_lead"])
def test_frame_scores_and_cuts_equal_upstream_content_detector(clips: dict[str, list[np.ndarray]], name: str) -> None:
    frames = clips[name]
    ours, upstream = _ContentDetector(threshold=27.0, min_scene_len=8), ContentDetector(threshold=27.0, min_scene_len=8)
    ours_cuts, upstream_cuts, scores = [], [], []
    for i, frame in enumerate(frames):
        tc = FrameTimecode(i, 25.0)
        ours_cuts += [c.frame_num for c in ours.process_frame(tc, frame)]
        upstream_cuts += [c.frame_num for c in upstream.process_frame(tc, frame)]
        assert ours._frame_score == upstream._frame_score  # exact: same integers, same arithmetic
        scores.append(ours._frame_score)
    assert max(scores) > 5.0 and min(scores[1:]) < 2.0  # real motion and near-stills were compared
    assert ours_cuts == upstream_cuts
    assert bool(ours_cuts) == (name != "bunny")  # the bundled clip is one shot


def test_other_detector_settings_take_upstreams_path(clips: dict[str, list[np.ndarray]]) -> None:
    frames = clips["bunny"][:40]
    edges = ContentDetector.Components(1.0, 1.0, 1.0, 1.0)
    ours, upstream = _ContentDetector(weights=edges), ContentDetector(weights=edges)
    stats, upstream_stats = _ContentDetector(), ContentDetector()
    stats.stats_manager, upstream_stats.stats_manager = StatsManager(), StatsManager()
    for i, frame in enumerate(frames):
        tc = FrameTimecode(i, 25.0)
        for a, b in ((ours, upstream), (stats, upstream_stats)):
            a.process_frame(tc, frame)
            b.process_frame(tc, frame)
            assert a._frame_score == b._frame_score


def test_cut_detector_reports_the_two_shot_cut_and_maps_it_to_the_next_keyframe(
        clips: dict[str, list[np.ndarray]]) -> None:
    frames = clips["two_shot"]
    detector = CutDetector(10.0, 27.0, 8)
    for i, frame in enumerate(frames):
        detector.process(i, frame)
    cuts = detector.finish()
    assert len(cuts) == 1
    mapped, shots = map_cuts(cuts, [0, cuts[0] - 5, cuts[0], len(frames) - 1])
    assert [(m.frame_index, m.keyframe_index) for m in mapped] == [(cuts[0], 2)]
    assert shots == [0, 0, 1, 1]
