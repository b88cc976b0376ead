"""Keyframe selection (GLaVE-Cap step 1): a candidate becomes a keyframe when its similarity to
the LAST KEYFRAME drops below the threshold. The first non-blank candidate is always a keyframe.

Tail rule (the method's): after the last candidate, the video's last frame is appended as a
keyframe when it lies at least one candidate interval after the last keyframe, and always when
only one keyframe was kept (so every video shows a start and an end). Its similarity is recorded
but does not decide: it is kept by position, not by change.

Candidates are embedded in batches (the backend's ``batch_size``: one for histograms, more for
CLIP), then decided one by one in order, so only a batch of candidate images is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .similarity import SimilarityBackend, cosine


@dataclass
class Candidate:
    sample_index: int  # dense sample this candidate is (candidates are a subset of dense samples)
    frame_index: int
    timestamp_s: float
    image_key: str
    width: int
    height: int
    image_rgb: np.ndarray


@dataclass
class Keyframe:
    keyframe_index: int
    sample_index: int
    frame_index: int
    timestamp_s: float
    similarity: float | None  # to the previous keyframe; None for the first
    image_key: str
    width: int
    height: int


class KeyframeSelector:
    def __init__(self, backend: SimilarityBackend, threshold: float) -> None:
        self.backend = backend
        self.threshold = threshold
        self.keyframes: list[Keyframe] = []
        self.candidates_seen = 0
        self._pending: list[Candidate] = []
        self._last_feature: np.ndarray | None = None

    def add(self, candidate: Candidate) -> None:
        self.candidates_seen += 1
        self._pending.append(candidate)
        if len(self._pending) >= max(1, self.backend.batch_size):
            self._flush()

    def finish(self) -> list[Keyframe]:
        self._flush()
        return self.keyframes

    def wants_tail(self, last_frame_t: float, candidate_interval_s: float) -> bool:
        """Whether the tail rule appends the frame at ``last_frame_t`` (call after ``finish``)."""
        if not self.keyframes:
            return False
        since = last_frame_t - self.keyframes[-1].timestamp_s
        if since <= 1e-9:  # the last frame is the last keyframe already
            return False
        return len(self.keyframes) == 1 or since >= candidate_interval_s - 1e-6

    def add_tail(self, candidate: Candidate) -> Keyframe:
        """Append the video's last frame as a keyframe regardless of its similarity."""
        self._flush()
        feat = self.backend.embed([candidate.image_rgb])[0]
        sim = None if self._last_feature is None else cosine(self._last_feature, feat)
        kf = Keyframe(len(self.keyframes), candidate.sample_index, candidate.frame_index, candidate.timestamp_s,
                      sim, candidate.image_key, candidate.width, candidate.height)
        self.keyframes.append(kf)
        self._last_feature = feat
        return kf

    def _flush(self) -> None:
        if not self._pending:
            return
        feats = self.backend.embed([c.image_rgb for c in self._pending])
        for cand, feat in zip(self._pending, feats):
            sim = None if self._last_feature is None else cosine(self._last_feature, feat)
            if sim is None or sim < self.threshold:
                self.keyframes.append(Keyframe(
                    len(self.keyframes), cand.sample_index, cand.frame_index, cand.timestamp_s,
                    sim, cand.image_key, cand.width, cand.height,
                ))
                self._last_feature = feat
        self._pending.clear()
