"""Frame similarity backends for keyframe selection (backend kind ``similarity``; one module per
backend, named as its ``ingest.similarity_backend`` value).

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

from typing import Any, Protocol

import numpy as np

from ...backends import Backend


class SimilarityBackend(Protocol):
    model_id: str
    batch_size: int

    def embed(self, images_rgb: list[np.ndarray]) -> np.ndarray:
        """One L2-normalised feature row per RGB uint8 image."""
        ...


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity of two features from ``embed`` (rows are L2-normalised)."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


class WeightlessSimilarity(Backend):
    """A descriptor computed by code alone: its id (with its version) is its model id."""

    model_id: str

    @classmethod
    def model_ids(cls, config: Any) -> dict[str, str]:
        return {"similarity": cls.model_id}

    @classmethod
    def from_config(cls, config: Any) -> WeightlessSimilarity:
        return cls()
