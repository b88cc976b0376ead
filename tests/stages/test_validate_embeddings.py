"""The QA stage stores the vectors validate needs; validate then judges without loading the
embedding model, with the same results, and still embeds a text the table lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from glave_tasks import schemas
from glave_tasks.quality import embeddings
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support.committed import Committed
from tests.support.seed import recommit
from tests.support.seed_run import seed_captioned_run

RUN = "r-embed"


@pytest.fixture(scope="module")
def qa_done(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, Any]:
    from glave_tasks.config import load_config

    tmp = tmp_path_factory.mktemp("embed")
    config = load_config(environ={}, overrides={"store": {"root": str(tmp / "store"), "local_cache": str(tmp / "cache")}})
    store = ArtifactStore(config.store.root)
    seed_captioned_run(store, config, RUN, tmp, stages=("caption", "bridge", "qa"))
    return store, config


def _checks(store: ArtifactStore) -> list[tuple[str, str, float | None]]:
    rows = store.read_table(Committed(store, RUN).table("validate", 0, "checks"), schemas.CHECKS).to_pylist()
    return sorted((r["check"], r["status"], r["value"]) for r in rows)


def _validate(store: ArtifactStore, config: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list[str], dict]:
    """Validate in a fresh process state; its checks, the model names it had to load, its metrics."""
    loaded: list[str] = []
    real = embeddings._model

    def spy(name: str) -> Any:
        loaded.append(name)
        return real(name)

    embeddings.forget()
    monkeypatch.setattr(embeddings, "_model", spy)
    out = run_stage(build_stage("validate", config), store, RUN, 0, force=True, show_progress=False)
    assert out.status == "committed"
    embeddings.forget()
    return _checks(store), loaded, out.marker["metrics"]


def test_qa_stores_a_unit_vector_per_text_and_validate_never_loads_the_model(
        qa_done: tuple[ArtifactStore, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    store, config = qa_done
    key = Committed(store, RUN).table("qa", 0, "embeddings")
    table = store.read_table(key, schemas.EMBEDDINGS)
    assert table.num_rows > 0
    assert set(table["video_id"].to_pylist()) == {"twoshot", "static"}
    assert set(table["model"].to_pylist()) == {config.qa.embedding_model, config.evaluate.gate.judge.embedding_model}
    assert all(len(v) == embeddings.DIM for v in table["vector"].to_pylist()[:5])

    seeded, loaded, metrics = _validate(store, config, monkeypatch)
    assert loaded == []  # every text validate and its gate embed came from the table
    assert metrics["embeddings_from_table"] == table.num_rows and metrics["texts_embedded"] == 0

    # The same checks, with the same values, as when validate embeds everything itself.
    original = store.read_table(key, schemas.EMBEDDINGS)
    (Path(store.root) / key).unlink()  # a shard committed before the table existed
    recommit(store, RUN, "qa", 0)
    try:
        direct, loaded, metrics = _validate(store, config, monkeypatch)
    finally:
        store.write_table(key, original)
        recommit(store, RUN, "qa", 0, add=("embeddings.parquet",))
    assert loaded and direct == seeded
    assert "embeddings_from_table" not in metrics and metrics["texts_embedded"] > 0
    names = {c for c, _, _ in seeded}
    assert {"qa.option_matches_answer", "qa.answerable", "qa.duplicates_near", "qa.self_consistency"} <= names
    assert "table.embeddings" not in names  # vectors are a store for the checks, not data they judge


def test_a_text_missing_from_the_table_is_still_embedded(qa_done: tuple[ArtifactStore, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store, config = qa_done
    key = Committed(store, RUN).table("qa", 0, "embeddings")
    original = store.read_table(key, schemas.EMBEDDINGS)
    full, _, _ = _validate(store, config, monkeypatch)
    store.write_table(key, original.filter(pc.not_equal(original["video_id"], "twoshot")))
    recommit(store, RUN, "qa", 0)
    try:
        partial, loaded, metrics = _validate(store, config, monkeypatch)
    finally:
        store.write_table(key, original)
        recommit(store, RUN, "qa", 0)
    assert loaded and partial == full
    assert 0 < metrics["texts_embedded"] < original.num_rows
