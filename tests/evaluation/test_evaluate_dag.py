"""The glave_evaluate DAG: parse-time integrity (cheap, no heavy imports, its own pods) and a real
Airflow ``dag.test()`` run in local mode: a run is evaluated, the report and MLflow get the
evaluation, and a second run whose captions got worse fails the DAG at the regression gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment

from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.support import ROOT, make_config
from tests.support.dag import HEAVY_MODULES
from tests.support.openai_server import FakeServer
from tests.support.seed_run import seed_captioned_run

from .test_run_evaluation import _copy_run_with_swapped_captions, fixture_judge

DAG_FILE = ROOT / "dags" / "glave_evaluate.py"


def _parse(env: dict[str, str]) -> dict[str, Any]:
    """Import the DAG file in a fresh interpreter; report its tasks and what got imported."""
    code = f"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("glave_evaluate", {str(DAG_FILE)!r})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
d = m.dag
print(json.dumps({{"tasks": {{t.task_id: [sorted(t.downstream_task_ids), type(t).__name__, getattr(t, "family", None),
                  list(t.subcommand)] for t in d.tasks}},
                  "schedule": [a.uri for a in d.timetable.asset_condition.objects],
                  "heavy": [h for h in {list(HEAVY_MODULES)!r} if h in sys.modules],
                  "params": sorted(d.params.keys())}}))
"""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def test_dag_parses_cheaply_runs_after_publish_and_sizes_the_judge_pod(tmp_path: Path) -> None:
    config = tmp_path / "glave.yaml"
    config.write_text(make_config(tmp_path).to_yaml())
    local = _parse({"GLAVE_CONFIG": str(config)})
    assert local["heavy"] == []
    assert local["tasks"]["evaluate"][0] == ["report"] and local["tasks"]["report"][0] == ["mlflow_log"]
    assert local["tasks"]["mlflow_log"][0] == ["regression"]
    assert local["tasks"]["evaluate"][1] == "GlaveLocalOperator"
    assert local["tasks"]["regression"][3] == ["evaluate-compare"]
    assert local["schedule"] == [f"{(tmp_path / 'store').resolve().as_uri()}/published"]
    assert {"run_id", "questions", "name", "baseline_run_id"} <= set(local["params"])
    pods = _parse({"GLAVE_CONFIG": str(config), "GLAVE__ORCHESTRATION__EXECUTOR": "kubernetes",
                   "GLAVE__EVALUATE__JUDGE__BACKEND": "vllm", "GLAVE__EVALUATE__JUDGE__MODEL": "org/judge"})
    assert pods["heavy"] == []
    assert pods["tasks"]["evaluate"][1] == "GlavePodOperator" and pods["tasks"]["evaluate"][2] == "llm"
    assert pods["tasks"]["report"][2] == "cpu"


def test_asset_triggered_run_takes_the_run_id_from_the_publish_event(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    config = tmp_path / "glave.yaml"
    config.write_text(make_config(tmp_path).to_yaml())
    monkeypatch.setenv("GLAVE_CONFIG", str(config))
    spec = importlib.util.spec_from_file_location("glave_evaluate_parse", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.RUN_ID

    class Event:
        def __init__(self, run_id: str) -> None:
            self.extra = {"run_id": run_id, "store": "s3://b/glave"}

    env = Environment()
    render = env.from_string(text).render
    events = {"asset": [Event("nightly-1"), Event("nightly-2")]}
    assert render(params={"run_id": ""}, triggering_asset_events=events) == "nightly-2"
    assert render(params={"run_id": "manual-7"}, triggering_asset_events={}) == "manual-7"
    assert render(params={"run_id": ""}, triggering_asset_events={}) == ""


@pytest.mark.slow
def test_dag_evaluates_reports_logs_and_fails_on_regression(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    seed_captioned_run(store, config, "good", tmp_path, stages=("caption", "bridge", "qa", "validate"))
    _copy_run_with_swapped_captions(store, "good", "worse")
    server = FakeServer(fixture_judge(store, "good"))  # the evaluate task (a subprocess) calls it
    request.addfinalizer(server.close)
    config = make_config(tmp_path, evaluate={"regression_margin": 0.05, "judge": {
                             "backend": "openai", "base_url": server.url, "model": "fixture-judge", "retries": 0}},
                         orchestration={"executor": "local", "retries": 0, "aws_conn_id": None})
    config_file = tmp_path / "glave.yaml"
    config_file.write_text(config.to_yaml())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GLAVE"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "GLAVE_CONFIG": str(config_file),
                "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"})
    migrate = subprocess.run([str(ROOT / ".venv" / "bin" / "airflow"), "db", "migrate"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    out = tmp_path / "outcomes.json"
    proc = subprocess.run([sys.executable, "-m", "tests.evaluation.evaluate_dag_run", str(out),
                           json.dumps({"run_id": "good"}), json.dumps({"run_id": "worse", "baseline_run_id": "good"})],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    first, second = json.loads(out.read_text())
    assert first["state"] == "success", first
    assert set(first["tasks"].values()) == {"success"} and len(first["tasks"]) == 4
    assert second["state"] == "failed", second
    assert second["tasks"] == {"evaluate": "success", "report": "success", "mlflow_log": "success",
                               "regression": "failed"}
    for run in ("good", "worse"):
        assert store.exists(f"{RunLayout(run).prefix}/evaluation/self-qa/summary.json")
        assert "Caption evaluation" in store.read_bytes(f"{RunLayout(run).report_prefix}/index.html").decode()
    worse = store.read_json(f"{RunLayout('worse').prefix}/evaluation/self-qa/summary.json")
    assert worse["comparison"]["regressed"] and worse["comparison"]["baseline_run_id"] == "good"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(config.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`glave.stage` = 'pipeline'")
    assert {r.data.tags["glave.run_id"] for r in runs if "eval.self-qa.accuracy" in r.data.metrics} == {"good", "worse"}
