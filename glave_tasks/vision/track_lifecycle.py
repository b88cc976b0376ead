"""When a track lives and ends: TrackFusion's presence rule, shared by the segmenters.

In GLaVE-Cap an object is present on a detection sample when the detector finds it there; its ID
carries over from the live track whose mask it matches (mask IoU >= ``track.match_iou``). A live
track that no detection re-matches is therefore not carried on indefinitely: it ends after
``track.max_missed_detections`` detection samples without a match (0, the default, is the
method's rule: it ends at the first one). ``track.max_objects_per_frame`` caps the objects of a
sample; the highest scores are kept and the rest end (or, for detections, never start). A hard
cut ends every track.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass
class TrackMeta:
    """What a track keeps between samples besides its masks."""

    track_id: int
    label: str
    score: float  # score of its latest detection
    missed: int = 0  # detection samples in a row without a matching detection


def top_scoring(scores: Sequence[float], cap: int) -> list[int]:
    """Indices of the ``cap`` highest scores, in their original order (ties: the earlier one)."""
    if len(scores) <= cap:
        return list(range(len(scores)))
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:cap]
    return sorted(ranked)


def settle_detection_sample(tracks: dict[int, TrackMeta], matched: Iterable[int],
                            max_missed: int) -> tuple[list[int], list[int]]:
    """Update missed counts after matching on a detection sample.

    ``tracks``: the live tracks before this sample's new detections; ``matched``: those a
    detection re-matched. Returns (carried, ended): unmatched tracks still within
    ``max_missed`` and unmatched tracks that end now (removed from ``tracks``).
    """
    hit = set(matched)
    carried: list[int] = []
    ended: list[int] = []
    for tid in sorted(tracks):
        meta = tracks[tid]
        if tid in hit:
            meta.missed = 0
            continue
        meta.missed += 1
        (ended if meta.missed > max_missed else carried).append(tid)
    for tid in ended:
        del tracks[tid]
    return carried, ended
