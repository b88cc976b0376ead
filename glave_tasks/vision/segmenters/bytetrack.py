"""Tracks from per-frame detections by box IoU: ultralytics' BYTETracker (Kalman + ``lap``).

The segmenter of box-only setups (``segmenter.backend: bytetrack``). One tracker per shot: a hard cut
ends every track. IDs are renumbered per video in order of first appearance, so they read
1, 2, 3 ... in every video. Masks are the detector's own (foreground blob or filled box).
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

import numpy as np

from ...backends import Backend
from ...config import TrackConfig
from ...contract import Resources
from ..track_lifecycle import top_scoring
from ..types import Detection, TrackedObject, VideoFrames, box_mask


class ByteTrackSegmenter(Backend):
    backend = "bytetrack"
    warm_imports = ("ultralytics.engine.results", "ultralytics.trackers.byte_tracker")
    model_id: str | None = None

    @classmethod
    def resources(cls, config: TrackConfig) -> Resources:
        return Resources(cpu="2", memory="4Gi")

    def __init__(self, config: TrackConfig, **_: Any) -> None:
        self.config = config
        # Samples are 0.5 s apart, so objects move far between them: associate at low IoU
        # (match_thresh is a cost, 1 - IoU) and keep a lost track for 4 samples (2 s).
        self.args = Namespace(
            track_high_thresh=max(config.detector.confidence, 0.3), track_low_thresh=0.1,
            new_track_thresh=max(config.detector.confidence, 0.3), track_buffer=4, match_thresh=0.9,
            fuse_score=True,
        )

    def track(self, video: VideoFrames, detections: list[list[Detection]]) -> list[list[TrackedObject]]:
        from ultralytics.engine.results import Boxes
        from ultralytics.trackers.byte_tracker import BYTETracker

        out: list[list[TrackedObject]] = [[] for _ in range(len(video))]
        renumber: dict[tuple[int, int], int] = {}
        tracker: BYTETracker | None = None
        labels: list[str] = []
        for i, found in enumerate(detections):
            if tracker is None or video.shots[i] != video.shots[i - 1]:
                tracker = BYTETracker(self.args)  # type: ignore[no-untyped-call]
            # At most max_objects_per_frame objects, highest scores kept. Tracks are reported only
            # on samples where a detection matches them (the method's presence rule); a lost
            # track is only remembered, unreported, for re-identification (track_buffer).
            dets = [found[k] for k in top_scoring([d.score for d in found], self.config.max_objects_per_frame)]
            height, width = video.images[i].shape[:2]
            # Classes are indices into this video's label list (BYTETracker tracks class ids).
            for d in dets:
                if d.label not in labels:
                    labels.append(d.label)
            data = np.array([[*d.box, d.score, labels.index(d.label)] for d in dets], np.float32).reshape(-1, 6)
            tracked = tracker.update(Boxes(data, (height, width)))
            for row in sorted(tracked.tolist(), key=lambda r: r[4]):
                det = dets[int(row[7])]
                key = (video.shots[i], int(row[4]))
                track_id = renumber.setdefault(key, len(renumber) + 1)
                mask = det.mask if det.mask is not None else box_mask(det.box, height, width)
                out[i].append(TrackedObject(track_id, det.box, det.score, det.label, mask))
        return out
