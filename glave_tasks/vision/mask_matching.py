"""Match new detection masks to existing track masks by mask IoU (TrackFusion's ID rule)."""

from __future__ import annotations

import numpy as np


def mask_iou_matrix(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """IoU of every mask of ``a`` with every mask of ``b`` (len(a) x len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    fa = np.stack([m.ravel() for m in a]).astype(np.float32)
    fb = np.stack([m.ravel() for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def match_masks(track_masks: dict[int, np.ndarray], det_masks: list[np.ndarray], min_iou: float) -> dict[int, int]:
    """detection index -> track id, one-to-one, maximising total IoU among pairs >= ``min_iou``."""
    ids = sorted(track_masks)
    iou = mask_iou_matrix([track_masks[i] for i in ids], det_masks)
    if iou.size == 0:
        return {}
    from ultralytics.trackers.utils.matching import linear_assignment

    # linear_assignment minimises cost and rejects pairs whose cost exceeds the threshold.
    matches, _, _ = linear_assignment(1.0 - iou, thresh=1.0 - min_iou + 1e-9)
    return {int(d): ids[int(t)] for t, d in matches if iou[t, d] >= min_iou}
