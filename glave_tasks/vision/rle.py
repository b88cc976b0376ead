"""COCO-style uncompressed run-length encoding of binary masks.

Counts run over the mask in column-major (Fortran) order and always start with a run of zeros
(possibly of length 0), exactly as ``pycocotools.mask`` uncompressed RLE, so the column can be
read by COCO tools after converting ``counts`` to a list.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode(mask: np.ndarray) -> dict[str, Any]:
    """Encode a 2-D bool/0-1 mask as {"height", "width", "counts"}."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    height, width = mask.shape
    flat = np.asarray(mask, bool).ravel(order="F")
    if flat.size == 0:
        return {"height": height, "width": width, "counts": []}
    # Indices where the value changes, plus both ends, give the run lengths.
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).astype(np.int64).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"height": int(height), "width": int(width), "counts": counts}


def decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode {"height", "width", "counts"} back into a bool mask."""
    height, width = int(rle["height"]), int(rle["width"])
    counts = np.asarray(rle["counts"], np.int64)
    if counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {height * width}")
    values = np.zeros(counts.size, bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def area(rle: dict[str, Any]) -> int:
    return int(sum(rle["counts"][1::2]))
