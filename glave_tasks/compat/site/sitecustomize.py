"""Loaded at start-up by Python subprocesses whose PYTHONPATH includes this folder.

vLLM inspects model classes and runs its engine core in child processes; where torchvision's C
extension cannot load (a CPU build of torch beside the CUDA-linked torchvision wheel) those
children need the same ``torchvision::nms`` fallback as the parent. The decision is the parent's
too: ``ensure_torchvision_ops`` imports torchvision first and registers nothing where its own
operators load (GPU images), so a child never registers them twice.
"""

try:
    import torch  # noqa: F401
except ImportError:  # an interpreter without torch has nothing to patch
    pass
else:
    from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
