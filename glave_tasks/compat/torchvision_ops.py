"""Pure-PyTorch ``torchvision::nms`` where torchvision's own operators cannot load.

PyPI only ships CUDA-linked torchvision wheels for Linux; beside a CPU build of torch their C
extension does not load, and ``import torchvision`` then fails registering fake kernels for
``torchvision::nms``. There, registering these operators makes torchvision (and so ultralytics
and SAM 2) import and run on CPU.

Where the builds match (the GPU images), torchvision's C extension registers the very same
operators when torchvision is imported, and a second registration of them aborts the process
(``c10::Error``, not a Python exception). So :func:`ensure_torchvision_ops` always imports
torchvision *first* and only then decides: operators present, nothing to do; operators missing,
register the fallback and import torchvision again. The same function runs in the stage path
(the vision backends call it before importing ultralytics or SAM 2) and in child processes
(``glave_tasks/compat/site/sitecustomize.py``).
"""

from __future__ import annotations

import sys

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


def _import_torchvision() -> BaseException | None:
    """Import torchvision (which loads its C extension where it can); the error if it failed."""
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, ImportError, OSError) as exc:
        return exc
    return None


def _forget_torchvision() -> None:
    # A failed import leaves its already-imported submodules behind; the retry must start clean.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision_ops() -> bool:
    """Make ``torchvision`` importable with a working ``torchvision::nms``.

    Imports torchvision first; registers the pure-PyTorch operators only when torchvision's own
    did not load. Returns True if it registered them (once per process), False otherwise.
    """
    global _LIB
    if _LIB is not None:
        return False
    error = _import_torchvision()
    if _has_op("nms"):
        if error is not None:  # the operators loaded, so the failure is something else: surface it
            raise error
        return False
    # torch.library is untyped.
    lib = torch.library.Library("torchvision", "DEF")  # type: ignore[no-untyped-call]
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")  # type: ignore[no-untyped-call]
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")  # type: ignore[no-untyped-call]
    lib.impl("nms", _nms, "CPU")  # type: ignore[no-untyped-call]
    lib.impl("qnms", _nms, "CPU")  # type: ignore[no-untyped-call]
    _LIB = lib
    if error is not None:
        _forget_torchvision()
    import torchvision.extension
    import torchvision.ops.boxes

    if not torchvision.extension._has_ops():
        # torchvision.ops.nms refuses to run without its C extension; nms itself is now present.
        torchvision.ops.boxes._assert_has_ops = lambda: None
    return True
