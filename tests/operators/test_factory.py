"""The operator factory: the same `glave` command line whether it runs as a pod or as a local
subprocess; the local operator really runs it, reports failures, honours the stage selection and
hands S3 credentials from the Airflow connection to the child process only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glave_tasks.config import load_config
from glave_tasks.stages import available
from operators.command import GlaveCommand
from operators.factory import glave_task, stage_task
from operators.local import GlaveLocalOperator
from operators.pod import GlavePodOperator
from tests.support import ROOT, synthetic

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def _config(executor: str):  # type: ignore[no-untyped-def]
    return load_config(environ={}, overrides={"orchestration": {"executor": executor}})


@pytest.mark.parametrize("stage", available())
def test_local_and_pod_tasks_run_the_identical_command(stage: str) -> None:
    kwargs = {"run_id": "nightly-2026-01-01", "shard": 4, "config_uri": "s3://cfg/glave.yaml", "store_uri": "s3://data/store"}
    local = stage_task(_config("local"), stage, **kwargs)
    pod = stage_task(_config("kubernetes"), stage, **kwargs)
    assert isinstance(local, GlaveLocalOperator) and isinstance(pod, GlavePodOperator)
    assert local.command().argv() == pod.command().argv() == [
        "glave", "stage", stage, "--run-id", "nightly-2026-01-01", "--shard", "4",
        "--config", "s3://cfg/glave.yaml", "--store", "s3://data/store", "--json"]
    assert pod.arguments()[:2] == ["stage", stage] and pod.arguments()[-2] == "--result-file"


def test_unset_params_leave_their_flags_out() -> None:
    cmd = GlaveCommand(("discover",), "r", None, "", "store", {"--max-videos": "None", "--shard-size": "8",
                                                               "--reprocess": "False", "--verbose-flag": "True"})
    assert cmd.argv() == ["glave", "discover", "--run-id", "r", "--store", "store", "--shard-size", "8", "--verbose-flag"]


def test_local_operator_runs_glave_and_returns_the_small_result(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=1.0)
    synthetic.static_video(inbox / "b.mp4", seconds=1.5)
    op = glave_task(_config("local"), task_id="discover", subcommand=["discover"], run_id="op-run",
                    store_uri=str(tmp_path / "store"), options={"--input": str(inbox), "--shard-size": "1"},
                    flags=("--json",), result_key="shards")
    op.aws_conn_id = None
    assert op.execute(context={"params": {}}) == [0, 1]


def test_local_operator_fails_the_task_on_a_failing_command(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowException

    op = stage_task(_config("local"), "ingest", run_id="no-such-run", shard=0, store_uri=str(tmp_path / "store"))
    op.aws_conn_id = None
    with pytest.raises(AirflowException, match="exited with code 2"):
        op.execute(context={"params": {}})


def test_stage_left_out_of_the_run_is_skipped(tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    op = stage_task(_config("local"), "track", run_id="r", shard=0, store_uri=str(tmp_path))
    with pytest.raises(AirflowSkipException):
        op.execute(context={"params": {"stages": ["ingest"]}})


def test_s3_credentials_come_from_the_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_GLAVE_S3_TEST",
                       '{"conn_type": "aws", "login": "AKIACONNTEST", "password": "conn-secret-value"}')
    op = stage_task(_config("local"), "ingest", run_id="r", shard=0)
    op.aws_conn_id = "glave_s3_test"
    env = op._environment()
    assert env["AWS_ACCESS_KEY_ID"] == "AKIACONNTEST" and env["AWS_SECRET_ACCESS_KEY"] == "conn-secret-value"
    assert "conn-secret-value" not in " ".join(op.command().argv())


def test_gpu_stages_are_bounded_and_pooled_on_kubernetes() -> None:
    prod = load_config(ROOT / "k8s/overlays/prod/glave-config.yaml", environ={})
    for name in available():
        op = stage_task(prod, name, run_id="r", shard=0)
        gpus = op.stage_resources.gpus
        assert (op.pool == prod.orchestration.gpu_pool) == (gpus > 0)
        assert (op.max_active_tis_per_dag == prod.orchestration.gpu_concurrency) == (gpus > 0)


def test_publish_event_names_the_published_run(tmp_path: Path) -> None:
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors

    dataset = Asset(name="glave_dataset", uri=f"file://{tmp_path}/published")
    # `glave status` of a run that exists stands in for publish: any succeeding command emits the event.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=1.0)
    store = str(tmp_path / "store")
    discover = glave_task(_config("local"), task_id="discover", subcommand=["discover"], run_id="pub-run",
                          store_uri=store, options={"--input": str(inbox)}, flags=("--json",), result_key="shards")
    discover.aws_conn_id = None
    discover.execute(context={"params": {}})
    op = glave_task(_config("local"), task_id="publish", subcommand=["status"], run_id="pub-run", store_uri=store,
                    outlets=[dataset])
    op.aws_conn_id = None
    events = OutletEventAccessors()
    op.execute(context={"params": {}, "outlet_events": events})
    assert events[dataset].extra == {"run_id": "pub-run", "store": store}
