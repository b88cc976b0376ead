"""The glave_nightly DAG file: cheap to parse, thin, and wired as the design says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from glave_tasks.stages import available
from tests.support.dag import DAG_FILE, HEAVY_MODULES, ROOT, load_dag_module

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

PARSE_PROBE = f"""
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk  # the DAG processor has Airflow loaded before it parses any file
t1 = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("glave_nightly", {str(DAG_FILE)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t2 = time.perf_counter()
print(json.dumps({{"parse_s": t2 - t1, "heavy": [m for m in {HEAVY_MODULES!r} if m in sys.modules],
                  "tasks": sorted(module.dag.task_ids)}}))
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    full = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **env}
    full.pop("GLAVE_CONFIG", None)
    out = subprocess.run([sys.executable, "-c", PARSE_PROBE], env=full, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("executor", ["local", "kubernetes"])
def test_dag_parses_fast_without_heavy_libraries(tmp_path: Path, executor: str) -> None:
    result = _probe(tmp_path, GLAVE__ORCHESTRATION__EXECUTOR=executor)
    assert result["heavy"] == [], f"parsing the DAG imported {result['heavy']}"
    # About 0.5 s on an idle 2-core machine; the bound leaves room for a loaded CI host while still
    # failing when parsing pulls in a model library (torch alone takes ~4 s to import).
    assert result["parse_s"] < 3.0, f"DAG file took {result['parse_s']:.2f}s to parse"
    assert "discover" in result["tasks"] and "publish" in result["tasks"]


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("airflow")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    return load_dag_module({"GLAVE__ORCHESTRATION__SCHEDULE": "30 3 * * *"}).dag


def test_every_registered_stage_is_one_task_per_shard_in_pipeline_order(nightly) -> None:  # type: ignore[no-untyped-def]
    stage_ids = [f"shard.{s}" for s in available()]
    assert set(stage_ids) <= set(nightly.task_ids)
    for upstream, downstream in zip(stage_ids, stage_ids[1:]):
        # Every task of the mapped group also reads its shard from discover's XCom.
        assert nightly.get_task(downstream).upstream_task_ids == {upstream, "discover"}
    assert nightly.get_task(stage_ids[0]).upstream_task_ids == {"discover"}


def test_shards_are_mapped_over_the_discover_result(nightly) -> None:  # type: ignore[no-untyped-def]
    group = nightly.task_group_dict["shard"]
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    assert isinstance(group, MappedTaskGroup)
    (arg,) = group._expand_input.value.values()
    assert arg.operator.task_id == "discover" and arg.key == "return_value"
    discover = nightly.get_task("discover")
    assert discover.result_key == "shards"


def test_report_publish_and_tracking_follow_the_shards(nightly) -> None:  # type: ignore[no-untyped-def]
    last_stage = f"shard.{available()[-1]}"
    assert nightly.get_task("report").upstream_task_ids == {last_stage}
    assert nightly.get_task("report").trigger_rule == "all_done"
    publish = nightly.get_task("publish")
    # Publish depends on every shard's last stage (all mapped instances), not only on the
    # ALL_DONE report: one failed shard and the night is not published.
    assert publish.upstream_task_ids == {"report", last_stage} and publish.trigger_rule == "all_success"
    assert [o.name for o in publish.outlets] == ["glave_dataset"]
    assert nightly.get_task("mlflow_log").upstream_task_ids == {"publish"}
    assert nightly.get_task("mlflow_log").trigger_rule == "all_done"


def test_dag_has_no_cycles_and_the_schedule_comes_from_config(nightly) -> None:  # type: ignore[no-untyped-def]
    nightly.check_cycle()
    nightly.validate()
    assert nightly.schedule == "30 3 * * *"
    assert nightly.max_active_runs == 1 and nightly.catchup is False


def test_stage_tasks_retry_with_backoff_and_time_out(nightly) -> None:  # type: ignore[no-untyped-def]
    for name in available():
        t = nightly.get_task(f"shard.{name}")
        assert t.retries >= 1 and t.retry_exponential_backoff
        assert t.max_retry_delay is not None and t.execution_timeout is not None
        assert t.execution_timeout >= timedelta(minutes=30)


def test_params_are_validated_by_airflow(nightly) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    good = ParamsDict(nightly.params)
    good.validate()
    bad_values = [("shard_size", 0), ("max_videos", -1), ("stages", ["ingest", "nope"]),
                  ("run_date", "yesterday"), ("input_prefix", ""), ("stages", [])]
    for key, value in bad_values:
        params = ParamsDict(nightly.params)
        with pytest.raises(ParamValidationError):
            params[key] = value
            params.validate()


def test_kubernetes_executor_builds_pod_operators_bounded_on_gpus(tmp_path: Path) -> None:
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path / "airflow"))
    prod = str(ROOT / "k8s" / "overlays" / "prod" / "glave-config.yaml")
    dag = load_dag_module({"GLAVE_CONFIG": prod}).dag
    from operators.model_server import ModelServerOperator
    from operators.pod import GlavePodOperator

    for task in dag.tasks:
        # The run's model server (prod: engine vllm) is a Deployment, started and stopped by its own operator.
        expected = ModelServerOperator if task.task_id.startswith("model_server_") else GlavePodOperator
        assert isinstance(task, expected), task.task_id
    track = dag.get_task("shard.track")
    assert track.pool == "glave_gpu" and track.pool_slots == 1 and track.max_active_tis_per_dag == 4
    ingest = dag.get_task("shard.ingest")
    assert ingest.pool == "default_pool" and ingest.max_active_tis_per_dag is None


def test_dag_file_imports_only_wiring() -> None:
    import ast

    tree = ast.parse(DAG_FILE.read_text())
    modules = {n.module if isinstance(n, ast.ImportFrom) else a.name
               for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in (n.names if isinstance(n, ast.Import) else [n])}
    allowed = {"__future__", "datetime", "typing", "airflow.sdk", "glave_tasks.stages", "glave_tasks.language.model_server",
               "operators.factory", "operators.model_server", "operators.publishing"}
    assert modules <= allowed, modules - allowed
    # Tasks come from the operator factory; the DAG defines no Python callables of its own.
    functions = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert functions == ["per_shard"]


def test_parsing_never_reads_a_remote_config(tmp_path: Path) -> None:
    """A remote GLAVE_CONFIG goes to the tasks as is; the DAG is shaped by defaults and GLAVE__ variables."""
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path / "airflow"))
    uri = "s3://glave-config-that-does-not-exist/glave.yaml"
    dag = load_dag_module({"GLAVE_CONFIG": uri, "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                           "GLAVE__ORCHESTRATION__SCHEDULE": "15 1 * * *"}).dag
    assert dag.schedule == "15 1 * * *"
    assert dag.params["config_uri"] == uri
    assert dag.get_task("discover").config_uri == "{{ params.config_uri }}"
