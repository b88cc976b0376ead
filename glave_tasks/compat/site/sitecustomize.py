"""Loaded at start-up by Python subprocesses whose PYTHONPATH includes this folder.

vLLM inspects model classes and runs its engine core in child processes; on a CPU build of torch
beside the CUDA-linked torchvision wheel those children need the same ``torchvision::nms``
fallback as the parent (see ``glave_tasks.compat.torchvision_ops``). CUDA builds skip it.
"""

try:
    import torch

    if torch.version.cuda is None:
        from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()
except ImportError:  # an interpreter without torch has nothing to patch
    pass
