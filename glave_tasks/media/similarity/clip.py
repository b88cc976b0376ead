"""``clip``: the method's own rule, the CLS token of the CLIP vision tower's last hidden state."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ...backends import Backend
from ...config import GlaveConfig
from ...contract import Resources
from ...errors import ConfigError


class ClipSimilarity(Backend):
    """The method's feature: the CLS token of the CLIP vision tower's last hidden state (not the
    pooled, post-layernormed or projected embedding), compared by cosine."""

    batch_size = 16
    warm_imports = ("transformers",)

    @classmethod
    def model_ids(cls, config: Any) -> dict[str, str]:
        return {"similarity": f"clip:{config.clip_model_path}"}

    @classmethod
    def resources(cls, config: Any) -> Resources:
        return Resources(cpu="2", memory="8Gi")  # ViT-L/14-336 vision tower on CPU, 16 frames a batch

    def __init__(self, model_dir: str | Path, source: str, device: str = "cpu") -> None:
        from ...compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()  # transformers' image processors import torchvision
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModel

        self._torch = torch
        self.device = device
        try:
            # A saved CLIPModel loads as its vision tower alone (the text tower is not needed).
            model: Any = CLIPVisionModel.from_pretrained(str(model_dir))
            self.model = model.to(device).eval()
            self.processor = CLIPImageProcessor.from_pretrained(str(model_dir))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"ingest.clip_model_path {source!r}: cannot load a CLIP model ({exc})") from exc
        self.model_id = f"clip:{source}@{_weights_digest(Path(model_dir))}"

    @classmethod
    def from_config(cls, config: GlaveConfig) -> ClipSimilarity:
        path = config.ingest.clip_model_path
        if not path:
            raise ConfigError("ingest.clip_model_path is required for the clip similarity backend")
        return cls(resolve_model_dir(path, config), path)

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        inputs = self.processor(images=list(images_rgb), return_tensors="pt")
        with torch.inference_mode():
            out = self.model(pixel_values=inputs["pixel_values"].to(self.device), output_hidden_states=True)
        feats = cls_features(out.hidden_states)
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return np.asarray(feats.cpu().numpy(), dtype=np.float32)


def cls_features(hidden_states: Any) -> Any:
    """The last hidden state's CLS token (position 0), one row per image."""
    return hidden_states[-1][:, 0]


def resolve_model_dir(uri: str, config: GlaveConfig) -> Path:
    """A local folder with the model files: the path itself, or an S3 prefix downloaded once
    into the local cache."""
    from ...store import filesystem_for

    fs, path = filesystem_for(uri, config.store.s3)
    if not uri.startswith("s3://"):
        if not Path(path).is_dir():
            raise ConfigError(f"ingest.clip_model_path {uri!r}: not a folder")
        return Path(path)
    target = Path(config.store.local_cache) / "models" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    done = target / ".complete"
    if not done.exists():
        try:
            files = fs.find(path)
        except FileNotFoundError:
            files = []
        if not files:
            raise ConfigError(f"ingest.clip_model_path {uri!r}: no files under that prefix")
        for remote in files:
            local = target / remote[len(path):].lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))
        done.write_text(uri)
    return target


def _weights_digest(model_dir: Path) -> str:
    """A short digest of the weight files' names and sizes: a retrained model changes it."""
    h = hashlib.sha256()
    for f in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:12]
