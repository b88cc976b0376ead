"""glave_nightly end to end through real Airflow (SQLite, `airflow db migrate`, `dag.test()`) in
local mode, on two tiny synthetic videos in an S3 bucket served by moto on 127.0.0.1, with MLflow
on SQLite. S3 credentials reach the stage processes only through the Airflow connection. Then one
mapped task instance is run again on its own (`airflow tasks test --map-index`), as clearing it
in the UI would, and only its shard changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from glave_tasks.config import S3Options
from glave_tasks.layout import RunLayout
from glave_tasks.run import Run
from glave_tasks.stages import available
from glave_tasks.store import ArtifactStore
from tests.support import ROOT, synthetic

LOGICAL_DATE = "2026-01-02"
RUN_ID = f"nightly-{LOGICAL_DATE}"

pytestmark = pytest.mark.slow


def _airflow_env(tmp: Path, config_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW", "GLAVE"))}
    env.update({
        "AIRFLOW_HOME": str(tmp / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "MLFLOW_DISABLE_TELEMETRY": "true",
        "GLAVE_CONFIG": str(config_file), "YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
    })
    return env


def _run(cmd: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd[:4])} failed:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    return out


def test_nightly_dag_runs_every_stage_per_shard_then_rerun_of_one_mapped_instance(
        tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    synthetic.two_shot_video(tmp_path / "a.mp4")
    synthetic.static_video(tmp_path / "b.mp4", seconds=2.0)
    for name in ("a.mp4", "b.mp4"):
        s3.upload_file(str(tmp_path / name), s3_bucket, f"inbox/{name}")

    store_root = f"s3://{s3_bucket}/prefix"
    config_file = tmp_path / "glave.yaml"
    config_file.write_text(yaml.safe_dump({
        "store": {"root": store_root, "local_cache": str(tmp_path / "cache"),
                  "s3": {"endpoint_url": s3_endpoint, "region": "us-east-1"}},
        "run": {"shard_size": 1},
        "orchestration": {"executor": "local", "input_prefix": f"s3://{s3_bucket}/inbox", "retries": 0,
                          "aws_conn_id": "aws_default"},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "artifact_location": str(tmp_path / "mlruns")},
    }))
    conn_file = tmp_path / "connections.json"
    conn_file.write_text(json.dumps({"aws_default": {
        "conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": "us-east-1"}}}))
    env = _airflow_env(tmp_path, config_file)

    _run([str(ROOT / ".venv" / "bin" / "airflow"), "db", "migrate"], env, 300)
    out = _run([sys.executable, "scripts/dag_test.py", "--logical-date", LOGICAL_DATE, "--conn-file", str(conn_file),
                "--out", str(tmp_path / "outcome.json")], env, 800)
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert outcome["state"] == "success", out.stdout[-4000:]
    states = {(t["task_id"], t["map_index"]): t["state"] for t in outcome["tasks"]}
    expected = {("discover", -1), ("report", -1), ("publish", -1), ("mlflow_log", -1)}
    expected |= {(f"shard.{s}", k) for s in available() for k in (0, 1)}
    assert set(states) == expected and set(states.values()) == {"success"}

    store = ArtifactStore(store_root, S3Options(endpoint_url=s3_endpoint, region="us-east-1"))
    for stage in available():
        for shard in (0, 1):
            assert Run(store, RUN_ID).commit(stage, shard) is not None, (stage, shard)
    assert store.list(RunLayout(RUN_ID).report_prefix)
    assert store.list(f"published/{RUN_ID}")

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    (exp,) = [e for e in client.search_experiments() if e.name == "glave-nightly"]
    runs = client.search_runs([exp.experiment_id], f"tags.`glave.run_id` = '{RUN_ID}'")
    assert {r.data.tags["glave.stage"] for r in runs} == {"pipeline", *available()}

    # Clearing one mapped task instance re-runs that shard alone: shard 1's last stage lost its
    # commit (as after a failed attempt); run that one task instance again through Airflow.
    last = available()[-1]
    markers = {(s, k): store.read_bytes(RunLayout(RUN_ID).commit(s, k)) for s in available() for k in (0, 1)}
    store.delete_prefix(RunLayout(RUN_ID).commit(last, 1))
    _run([str(ROOT / ".venv" / "bin" / "airflow"), "tasks", "test", "glave_nightly", f"shard.{last}",
          outcome["run_id"], "--map-index", "1"],
         {**env, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(json.loads(conn_file.read_text())["aws_default"])}, 300)
    after = {(s, k): store.read_bytes(RunLayout(RUN_ID).commit(s, k)) for s in available() for k in (0, 1)}
    assert {cell for cell in markers if markers[cell] != after[cell]} == {(last, 1)}
    assert json.loads(after[(last, 1)])["fingerprint"] == json.loads(markers[(last, 1)])["fingerprint"]
