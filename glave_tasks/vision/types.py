"""Plain data passed between detectors, trackers and the Set-of-Mark renderer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass
class Detection:
    """One object found on one frame. ``mask`` is a bool HxW array, or None for box-only output."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    label: str
    mask: np.ndarray | None = None


@dataclass
class TrackedObject:
    """One object of one sampled frame, with the ID it keeps across the video."""

    track_id: int
    box: tuple[float, float, float, float]
    score: float
    label: str
    mask: np.ndarray  # bool HxW at frame resolution


@dataclass
class VideoFrames:
    """The dense frame sample of one video: RGB images, their JPEG files, their shot numbers."""

    video_id: str
    images: list[np.ndarray]  # RGB uint8, all the same size
    paths: list[Path]  # JPEG file of each image (SAM 2 reads a folder of them)
    shots: list[int]  # shot number of each sample; trackers restart at a new shot
    timestamps: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


class Detector(Protocol):
    backend: str
    model_id: str

    def detect(self, video: VideoFrames) -> list[list[Detection]]: ...


class Segmenter(Protocol):
    backend: str
    model_id: str | None

    def track(self, video: VideoFrames, detections: list[list[Detection]]) -> list[list[TrackedObject]]: ...


def box_mask(box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """The filled box as a mask: the mask of box-only detections."""
    mask = np.zeros((height, width), bool)
    x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x2, y2 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
    mask[y1:y2, x1:x2] = True
    return mask


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight box (x1, y1, x2 exclusive, y2 exclusive) of a mask, None when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)
