"""Frame sampling on a time grid, resizing and JPEG encoding, and the blank-frame test."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect.scene_manager import compute_downscale_factor


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size scaled down (never up) so the longer side is at most ``max_side``; even dimensions
    keep every chroma-subsampled consumer happy."""
    scale = min(1.0, max_side / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def analysis_size(width: int, height: int, effective_width: int = 160) -> tuple[int, int]:
    """The cut detector's frame size, by PySceneDetect's own downscale rule
    (``effective_width`` in place of its ``DEFAULT_MIN_WIDTH``). ContentDetector's score is a
    per-pixel mean, so it stays in the range its default threshold was tuned for. Even sides:
    the analysis frame is built as 4:2:0."""
    factor = compute_downscale_factor(max(width, height), effective_width)
    return max(2, round(width / factor / 2) * 2), max(2, round(height / factor / 2) * 2)


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def is_blank(bgr: np.ndarray, luma_threshold: float, std_threshold: float) -> bool:
    """Dark and flat: a black leader, a fade-in start, a blank slate."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(gray)
    return float(mean[0, 0]) < luma_threshold and float(std[0, 0]) < std_threshold


@dataclass
class SampleGrid:
    """Picks the decoded frames nearest to every multiple of ``interval_s``.

    Works on presentation times, so variable-frame-rate video is sampled on real time; a frame
    is taken when it reaches the next grid time, within half a frame.
    """

    interval_s: float
    fps: float
    next_s: float = 0.0
    count: int = 0

    def due(self, t: float) -> bool:
        tolerance = 0.5 / self.fps if self.fps > 0 else 1e-3
        if t + tolerance < self.next_s:
            return False
        # Skip grid points a gap in the stream jumped over: one sample per frame at most.
        self.next_s = (math.floor((t + tolerance) / self.interval_s) + 1) * self.interval_s
        self.count += 1
        return True
