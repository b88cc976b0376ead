"""Frame similarity backends for keyframe selection (registered as backend kind ``similarity``).

The method keeps a 2 s candidate when its similarity to the last keyframe falls below 0.93, where
similarity is the cosine of CLIP ViT-L/14-336's vision-tower CLS token (last hidden state). That
rule drops near-duplicates (a held shot, a slide, a talking head between gestures) and keeps
ordinary change inside a shot: on edited footage it keeps most candidates (0.3-0.45 keyframes per
second of video).

``layout`` (default, no weights): cosine of a small picture-layout descriptor, calibrated to that
behaviour at the same threshold. The descriptor is the frame's gradient-magnitude map (after a
light blur, on an 8x5 grid) and its CIELAB colour (16x9 grid), each mean-centred and normalised,
weighted 0.5/0.5: gradients say where edges are, so motion and camera moves lower the score;
colour keeps a lighting change from reading as the same picture. Calibration on real footage (the
Big Buck Bunny clip: one shot, a character moving, a slow camera), at the size ingest hands over:
frames 2 s apart score a median 0.90 and 80% fall below 0.93; 1 s apart 67%; 0.2 s apart a median
0.99; the same frame with sensor noise, JPEG q40, +15% brightness or a 6 px shift scores >= 0.98;
a mirrored or re-framed picture or a hard cut scores far below. The score varies by a few points
at most between 320 px and 1280 px sources. On edited footage built from that clip (cuts,
re-framing, slow motion, freeze frames; ``tests/support/edited_footage.py``) it keeps 70-75% of
candidates: 0.35-0.38 keyframes per second, the method's range.

``histogram``: correlation of HSV colour histograms. Kept for comparison only: it ignores where
colours are, so frames of one shot score 0.96-0.99 even with the subject moving, and keyframes
collapse to a handful per video.

``clip``: the method's own rule: CLS token of the CLIP vision tower's last hidden state (before
the post-layernorm and the projection), cosine. Weights from ``ingest.clip_model_path``: a local
folder or an ``s3://`` prefix holding a ``transformers`` CLIP model (``save_pretrained``: a
CLIPModel or a CLIPVisionModel) and its image processor.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..config import GlaveConfig
from ..errors import ConfigError


class SimilarityBackend(Protocol):
    model_id: str
    batch_size: int

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised feature row per RGB uint8 image."""
        ...


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity of two features from ``embed`` (rows are L2-normalised)."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


class LayoutSimilarity:
    """Gradient and colour layout on a coarse grid (see the module docstring for the calibration).

    Frames are first brought to one analysis size (448x252, aspect not kept: only frames of the
    same video are compared), so the score does not depend on the video's resolution."""

    model_id = "layout-grad8x5-lab16x9-w0.5"
    batch_size = 1
    analysis_size = (448, 252)
    blur_sigma = 1.0  # before the gradients: the same picture at any source resolution scores alike
    edge_grid = (8, 5)
    colour_grid = (16, 9)
    gradient_weight = 0.5

    @classmethod
    def from_config(cls, config: GlaveConfig) -> LayoutSimilarity:
        return cls()

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        return np.stack([self._describe(img) for img in images_rgb]).astype(np.float32)

    def _describe(self, img: np.ndarray) -> np.ndarray:
        small = cv2.resize(img, self.analysis_size, interpolation=cv2.INTER_AREA)
        gray = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), self.blur_sigma)
        magnitude = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
        edges = _centred_unit(cv2.resize(magnitude, self.edge_grid, interpolation=cv2.INTER_AREA))
        if not edges.any():
            # A featureless frame (one flat colour): every such frame has the same "layout", so
            # two of them compare by colour alone and one against a real picture scores low.
            edges[0] = 1.0
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
        colour = _centred_unit(cv2.resize(lab, self.colour_grid, interpolation=cv2.INTER_AREA))
        w = self.gradient_weight
        # Each part has unit norm, so the cosine of the concatenation is the weighted mean of the
        # parts' correlations (and still 1.0 for identical frames).
        return np.concatenate([np.sqrt(w) * edges, np.sqrt(1.0 - w) * colour])


def _centred_unit(values: np.ndarray) -> np.ndarray:
    flat = values.astype(np.float64).ravel()
    flat = flat - flat.mean()
    norm = float(np.linalg.norm(flat))
    # Nothing varies (a flat picture): the zero vector; the caller decides what that means.
    return np.asarray(flat / norm if norm > 1e-9 else flat)


class HistogramSimilarity:
    """HSV histogram correlation. Pearson correlation of two histograms is the cosine of the
    mean-centred, normalised histograms, so features are centred here and ``cosine`` applies."""

    model_id = "hsv-histogram-16x8x8"
    batch_size = 1
    bins = (16, 8, 8)

    @classmethod
    def from_config(cls, config: GlaveConfig) -> HistogramSimilarity:
        return cls()

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        rows = []
        for img in images_rgb:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(self.bins), [0, 180, 0, 256, 0, 256]).ravel()
            centred = hist / max(float(hist.sum()), 1.0)
            centred = centred - centred.mean()
            norm = float(np.linalg.norm(centred))
            rows.append(centred / norm if norm > 0 else centred)
        return np.stack(rows).astype(np.float32)


class ClipSimilarity:
    """The method's feature: the CLS token of the CLIP vision tower's last hidden state (not the
    pooled, post-layernormed or projected embedding), compared by cosine."""

    batch_size = 16

    def __init__(self, model_dir: str | Path, source: str, device: str = "cpu") -> None:
        from ..compat.torchvision_ops import ensure_torchvision_ops

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
    from ..store import filesystem_for

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
