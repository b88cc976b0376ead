"""A random-initialised CLIP with its image processor, built offline (no hub)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_clip(target: Path) -> Path:
    from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

    ensure_torchvision_ops()
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tiny = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2)
    cfg = CLIPConfig(
        text_config={**tiny, "vocab_size": 99, "max_position_embeddings": 16},
        vision_config={**tiny, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(target)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(target)
    return target
