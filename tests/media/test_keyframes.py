"""Keyframe selection rules: last-keyframe comparison, the tail rule, the fade-to-black tail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glave_tasks.config import IngestConfig
from glave_tasks.media.keyframes import Candidate, KeyframeSelector
from glave_tasks.media.scan import scan_video
from glave_tasks.media.similarity.layout import LayoutSimilarity
from tests.support import synthetic


def _selector_with(times: list[float], same: bool) -> KeyframeSelector:
    """Candidates at ``times``: all the same picture (``same``) or all different."""
    rng = np.random.default_rng(1)
    fixed = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
    selector = KeyframeSelector(LayoutSimilarity(), threshold=0.93)
    for i, t in enumerate(times):
        img = fixed if same else rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
        selector.add(Candidate(i, int(t * 10), t, f"k{i}", 64, 36, img))
    selector.finish()
    return selector


@pytest.mark.parametrize(("times", "same", "last_frame_t", "expected"), [
    ([0.0, 2.0, 4.0], False, 5.9, False),  # 1.9 s after the last keyframe: no tail
    ([0.0, 2.0, 4.0], False, 6.0, True),  # one full interval after it: tail
    ([0.0, 2.0, 4.0], True, 4.5, True),  # only the first frame kept: always a tail
    ([0.0], True, 0.0, False),  # a one-frame video: the last frame is the keyframe
])
def test_tail_rule(times: list[float], same: bool, last_frame_t: float, expected: bool) -> None:
    assert _selector_with(times, same).wants_tail(last_frame_t, 2.0) is expected


def test_tail_is_kept_whatever_its_similarity() -> None:
    selector = _selector_with([0.0, 2.0, 4.0], same=True)
    assert len(selector.keyframes) == 1
    first = selector.keyframes[0]
    img = np.zeros((36, 64, 3), np.uint8)
    tail = selector.add_tail(Candidate(9, 45, 4.5, "k9", 64, 36, img))
    assert [k.keyframe_index for k in selector.keyframes] == [0, 1] and tail.timestamp_s == 4.5
    assert first.similarity is None and tail.similarity is not None


def test_a_fade_to_black_ending_takes_the_last_picture_as_the_tail(tmp_path: Path) -> None:
    # One static shot (5 s) then 0.8 s of black (no candidate falls on it): the tail is the last
    # dense sample that shows the picture (4.5 s), not a black frame.
    path = tmp_path / "fade.mp4"
    gt = synthetic.write_video(path, [synthetic.Shot(5.0, (120, 120, 120), texture_seed=3)], fps=10)
    import av

    with av.open(str(path)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    black = np.zeros_like(frames[0])
    faded = tmp_path / "faded.mp4"
    with av.open(str(faded), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = gt.width, gt.height, "yuv420p"
        for img in frames + [black] * 8:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    result = scan_video(faded, IngestConfig(), LayoutSimilarity(), lambda d, i: f"k{i}")
    assert [k.frame_index for k in result.keyframes] == [0, 45]  # 4.5 s: the last dense sample with content
    assert result.keyframes[1].sample_index == 9 and result.dense[-1].frame_index == 55
