"""Similarity backends: the weightless default calibrated on real footage (Big Buck Bunny) to the
method's CLIP rule, and the CLIP backend computing the method's feature (vision-tower CLS)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from glave_tasks.media.similarity import cosine
from glave_tasks.media.similarity.histogram import HistogramSimilarity
from glave_tasks.media.similarity.layout import LayoutSimilarity
from tests.support.edited_footage import source_frames
from tests.support.tiny_clip import save_tiny_clip


@pytest.fixture(scope="module")
def bunny() -> list[np.ndarray]:
    # The size ingest hands the selector for this clip (long side 1024).
    return source_frames((1024, 576))


def _pair_scores(backend: object, frames: list[np.ndarray], gap: int) -> np.ndarray:
    feats = backend.embed(frames)  # type: ignore[attr-defined]
    return np.array([cosine(feats[i], feats[i + gap]) for i in range(len(frames) - gap)])


def test_layout_keeps_ordinary_change_and_drops_near_duplicates(bunny: list[np.ndarray]) -> None:
    layout = LayoutSimilarity()
    # Real footage, one shot: a character moving, the camera drifting. Candidates 2 s apart
    # (50 frames at 25 fps) are mostly new pictures under the method's 0.93 rule...
    two_s = _pair_scores(layout, bunny, 50)
    assert 0.7 <= float(np.mean(two_s < 0.93)) <= 0.9
    # ...frames 0.2 s apart are the same picture, but for the fastest moments.
    fifth = _pair_scores(layout, bunny, 5)
    assert float(np.median(fifth)) >= 0.98 and float(np.mean(fifth < 0.93)) <= 0.15
    # The colour histogram cannot tell them apart: it keeps almost nothing of the same shot.
    assert float(np.mean(_pair_scores(HistogramSimilarity(), bunny, 50) < 0.93)) <= 0.1

    # Near-duplicates of one frame stay above the threshold with margin.
    base = bunny[60]
    rng = np.random.default_rng(0)
    ok, jpeg = cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_QUALITY, 40])
    variants = {
        "sensor noise": np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8),
        "jpeg q40": cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED),
        "brighter 15%": np.clip(base * 1.15, 0, 255).astype(np.uint8),
        "shifted 6 px": np.roll(base, 6, axis=1),
    }
    ref = layout.embed([base])[0]
    for name, img in variants.items():
        assert cosine(ref, layout.embed([img])[0]) >= 0.97, name
    # A different picture of the same film (mirrored, a tighter crop) is far below.
    assert cosine(ref, layout.embed([base[:, ::-1].copy()])[0]) < 0.5
    crop = cv2.resize(base[96:480, 160:864], (1024, 576))
    assert cosine(ref, layout.embed([crop])[0]) < 0.6


def test_layout_ignores_resolution_and_a_flat_picture_matches_nothing(bunny: list[np.ndarray]) -> None:
    layout = LayoutSimilarity()
    big, small = bunny[30], cv2.resize(bunny[30], (320, 180), interpolation=cv2.INTER_AREA)
    assert cosine(*layout.embed([big, small])) >= 0.98
    # Featureless frames (a flat colour card) are the same picture as each other, not as a scene.
    flat = np.full((360, 640, 3), 90, np.uint8)
    assert cosine(*layout.embed([flat, flat.copy()])) == pytest.approx(1.0)
    assert cosine(*layout.embed([flat, big])) < 0.5


def test_clip_backend_compares_the_vision_tower_cls_token(tmp_path: Path, bunny: list[np.ndarray]) -> None:
    """The method's feature: hidden_states[-1][:, 0] of the vision tower, not the projected
    image embedding (the reference compares exactly that)."""
    model_dir = save_tiny_clip(tmp_path / "tiny-clip")  # also installs the CPU torchvision ops
    import torch
    from transformers import CLIPImageProcessor, CLIPModel

    from glave_tasks.media.similarity.clip import ClipSimilarity

    backend = ClipSimilarity(model_dir, str(model_dir))
    images = [bunny[0], bunny[60], bunny[120]]
    feats = backend.embed(images)

    full = CLIPModel.from_pretrained(model_dir).eval()
    inputs = CLIPImageProcessor.from_pretrained(model_dir)(images=images, return_tensors="pt")
    with torch.inference_mode():
        out = full.vision_model(pixel_values=inputs["pixel_values"], output_hidden_states=True)
        projected = full.get_image_features(pixel_values=inputs["pixel_values"])
    cls = torch.nn.functional.normalize(out.hidden_states[-1][:, 0].float(), dim=-1).numpy()
    assert feats.shape == (3, 32)
    np.testing.assert_allclose(feats, cls, atol=1e-5)
    if not isinstance(projected, torch.Tensor):
        projected = projected.pooler_output
    assert projected.shape[-1] == 16  # the projection the method does not use
    # Not the post-layernorm pooled output either.
    pooled = torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).numpy()
    assert not np.allclose(feats, pooled, atol=1e-3)
