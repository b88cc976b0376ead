"""Shot cuts with PySceneDetect's ContentDetector, fed frame by frame from the ingest decode
pass (no second decode), and their mapping onto keyframes."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector


class CutDetector:
    def __init__(self, fps: float, threshold: float, min_scene_len_frames: int) -> None:
        self.fps = fps if fps > 0 else 25.0
        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len_frames)
        self._cuts: list[int] = []
        self._last = -1

    def process(self, frame_index: int, bgr: np.ndarray) -> None:
        """Feed the next decoded frame (BGR, any size; the analysis-size frame is cheapest)."""
        found = self._detector.process_frame(FrameTimecode(frame_index, self.fps), bgr)
        self._cuts.extend(tc.frame_num for tc in found)
        self._last = frame_index

    def finish(self) -> list[int]:
        """Frame indices where a new shot starts, ascending."""
        if self._last >= 0:
            found = self._detector.post_process(FrameTimecode(self._last, self.fps))
            self._cuts.extend(tc.frame_num for tc in found)
        return sorted(set(c for c in self._cuts if c > 0))


@dataclass(frozen=True)
class MappedCut:
    cut_index: int
    frame_index: int
    keyframe_index: int  # first keyframe at or after the cut


def map_cuts(cut_frames: list[int], keyframe_frames: list[int]) -> tuple[list[MappedCut], list[int]]:
    """Cuts mapped to keyframes, and each keyframe's shot index (cuts at or before it).

    A cut after the last keyframe starts a shot no keyframe shows; it has no keyframe to map to
    and is left out (the scene grouping downstream works on keyframes only).
    """
    mapped: list[MappedCut] = []
    for frame in cut_frames:
        k = bisect_left(keyframe_frames, frame)
        if k < len(keyframe_frames):
            mapped.append(MappedCut(len(mapped), frame, k))
    shots = [bisect_right(cut_frames, f) for f in keyframe_frames]
    return mapped, shots
