"""Shot cuts: PySceneDetect's ContentDetector fed the analysis-size frames, and the cuts mapped onto
keyframes."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from glave_tasks.media.cuts import CutDetector, map_cuts
from glave_tasks.media.frame_sampling import analysis_size
from tests.support import synthetic


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
    return {"two_shot": analysis_frames(d / "two_shot.mp4")}


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
