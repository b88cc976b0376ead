"""A random-initialised SAM 2.1 tiny checkpoint built offline (``ckpt_path=None``, no download).

Random weights score every object as absent (masks of -1024), so the object-score head's bias is
raised: weights stay random, masks become random but present, which is what propagation, memory
and matching need to be exercised.
"""

from __future__ import annotations

from pathlib import Path

TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def write_tiny_sam2(path: Path, image_size: int = 256, seed: int = 0) -> Path:
    from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(seed)
    model = build_sam2_video_predictor(TINY_CONFIG, ckpt_path=None, device="cpu",
                                       hydra_overrides_extra=[f"++model.image_size={image_size}"])
    state = model.state_dict()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 10.0
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return path
