"""Hostile run ids: refused at the edge with a clear error, never encoded into a colliding key,
never interpolated into an MLflow search that could reach another run."""

from __future__ import annotations

from pathlib import Path

import pytest

from glave_tasks.discover import discover
from glave_tasks.errors import GlaveError
from glave_tasks.keys import InvalidRunId
from glave_tasks.store import ArtifactStore
from tests.support import make_config

from .conftest import Ledger

HOSTILE_IDS = ["x'q", "n1' or tags.`glave.run_id` = 'n1", "", "../n1", "n1/../../etc", "n1 ", "ü", "a" * 97]


def test_hostile_run_ids_never_reach_the_store_or_mlflow(tmp_path: Path, ledger: Ledger) -> None:
    from mlflow import MlflowClient

    from glave_tasks.mlflow_log import RUN_TAG, _find_run, log_run

    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    (tmp_path / "inbox").mkdir()
    for rid in ("n1", "n1x", "x_q-4bfb793042"):
        discover(store, config, str(tmp_path / "inbox"), rid)
        log_run(store, config, rid)
    client = MlflowClient(tracking_uri=config.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(config.mlflow.experiment)
    before = {r.info.run_id: (r.data.tags.get(RUN_TAG), dict(r.data.metrics)) for r in client.search_runs([exp.experiment_id])}
    for rid in HOSTILE_IDS:
        ledger.inject("hostile_run_id")
        with pytest.raises(InvalidRunId):
            discover(store, config, str(tmp_path / "inbox"), rid)
        with pytest.raises(InvalidRunId):
            log_run(store, config, rid)
        ledger.survive("hostile_run_id")
    with pytest.raises(GlaveError, match="refusing to search MLflow"):
        _find_run(client, exp.experiment_id, {RUN_TAG: "n1' or '1' = '1"})
    after = {r.info.run_id: (r.data.tags.get(RUN_TAG), dict(r.data.metrics)) for r in client.search_runs([exp.experiment_id])}
    assert after == before  # nothing written anywhere
    # Similar ids stay apart: each finds exactly its own pipeline run.
    found = {rid: _find_run(client, exp.experiment_id, {RUN_TAG: rid, "glave.stage": "pipeline"}).info.run_id
             for rid in ("n1", "n1x", "x_q-4bfb793042")}
    assert len(set(found.values())) == 3
    assert sorted(p.name for p in (tmp_path / "store" / "runs").iterdir()) == ["n1", "n1x", "x_q-4bfb793042"]
