"""Load a video's dense frame sample (JPEG files) into :class:`VideoFrames`."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import VideoFailure
from .types import VideoFrames


def shot_numbers(timestamps: Sequence[float], cut_times: Sequence[float]) -> list[int]:
    """Shot number of each timestamp: how many cuts happen at or before it."""
    cuts = sorted(cut_times)
    return [bisect.bisect_right(cuts, t + 1e-6) for t in timestamps]


def load_frames(video_id: str, paths: Sequence[Path], timestamps: Sequence[float], cut_times: Sequence[float]) -> VideoFrames:
    """Decode the JPEGs (RGB). A missing or unreadable frame fails the video, with its name."""
    # OpenCV, not PIL: ultralytics patches PIL's Image.open and fails oddly on bad files.
    import cv2

    images: list[np.ndarray] = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoFailure("frame_unreadable", f"{path}: not a decodable image")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise VideoFailure("frame_size_mismatch", f"dense frames differ in size: {sorted(sizes)}")
    return VideoFrames(video_id, images, [Path(p) for p in paths], shot_numbers(timestamps, cut_times), list(timestamps))
