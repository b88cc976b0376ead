"""Pure-PyTorch ``torchvision::nms`` for CPU machines whose torchvision wheel is CUDA-linked.

PyPI only ships CUDA-linked torchvision wheels for Linux; beside a CPU build of torch its C
extension does not load, and ``import torchvision`` then fails registering fake kernels for
``torchvision::nms``/``qnms``. Registering these operators first makes torchvision (and so
ultralytics and SAM 2) import and run on CPU. GPU images ship matching builds: there the
operators exist and :func:`ensure_torchvision_ops` does nothing.
"""

from __future__ import annotations

import torch

_LIB: torch.library.Library | None = None


def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    if dets.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=dets.device)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    keep: list[int] = []
    suppressed = torch.zeros(dets.shape[0], dtype=torch.bool)
    for idx in order.tolist():
        if suppressed[idx]:
            continue
        keep.append(idx)
        xx1 = torch.maximum(x1[idx], x1)
        yy1 = torch.maximum(y1[idx], y1)
        xx2 = torch.minimum(x2[idx], x2)
        yy2 = torch.minimum(y2[idx], y2)
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[idx] + areas - inter).clamp(min=1e-9)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=dets.device)


def _has_op(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def ensure_torchvision_ops() -> bool:
    """Register the fallback operators if torchvision's own are missing. True if it did."""
    global _LIB
    if _LIB is not None or _has_op("nms"):
        return False
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CPU")
    lib.impl("qnms", _nms, "CPU")
    _LIB = lib
    import torchvision.extension
    import torchvision.ops.boxes

    if not torchvision.extension._has_ops():
        # torchvision.ops.nms refuses to run without its C extension; nms itself is now present.
        torchvision.ops.boxes._assert_has_ops = lambda: None
    return True
