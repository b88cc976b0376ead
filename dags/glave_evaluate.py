"""glave_evaluate: score a run's captions with a judge, the GLaVE-Bench way, and guard against regressions.

Runs after each ``glave_nightly`` publish (scheduled on the published-dataset Asset, whose event
names the run) or by hand with a ``run_id``. evaluate (judge pod: the LLM image on a GPU for a
vLLM judge, CPU otherwise) -> report (the analysts' report gains the evaluation section) ->
mlflow_log (evaluation metrics on the run) -> regression (fails the DAG when accuracy dropped more
than ``evaluate.regression_margin`` against the baseline run). No business logic and no heavy
imports here: every task is a ``glave`` command, locally or in a pod.

Config: ``GLAVE_CONFIG`` (path or s3:// URI) plus ``GLAVE__SECTION__FIELD`` overrides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param

from glave_tasks.evaluation.deployment import evaluate_requirements
from operators.factory import dag_config, glave_task
from operators.publishing import dataset_asset_uri

# GLAVE_CONFIG goes to every task; parsing reads it only when it is a local file (never S3).
CONFIG_URI, config = dag_config()
FAMILY, RESOURCES = evaluate_requirements(config)
DATASET = Asset(name="glave_dataset", uri=dataset_asset_uri(config), group="glave")
DEFAULT_NAME = "benchmark" if config.evaluate.questions else "self-qa"

# A manual run names the run; an Asset-triggered run takes it from the publish event.
RUN_ID = ("{{ params.run_id or ((triggering_asset_events.values() | first | last).extra['run_id'] "
          "if triggering_asset_events else '') }}")
PARAMS: dict[str, Any] = {"config_uri": "{{ params.config_uri }}", "store_uri": "{{ params.store_uri }}"}
NAME = {"--name": "{{ params.name }}"}
BASELINE = {"--baseline": "{{ params.baseline_run_id }}"}

with DAG(
    dag_id="glave_evaluate",
    schedule=[DATASET],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["glave", "evaluation"],
    doc_md=__doc__,
    params={
        "run_id": Param("", type="string", description="Run to evaluate; empty: the run the triggering publish named."),
        "questions": Param(config.evaluate.questions or "", type="string",
                           description="Benchmark annotation folder or s3:// prefix; empty: the run's own QA."),
        "name": Param(DEFAULT_NAME, type="string", minLength=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$",
                      description="Evaluation name (question set): benchmark | self-qa | your own."),
        "baseline_run_id": Param(config.evaluate.baseline_run_id or "", type="string",
                                 description="Baseline run; empty: the latest other run with this evaluation."),
        "store_uri": Param(config.store.root, type="string", minLength=1, description="Artifact store root."),
        "config_uri": Param(CONFIG_URI, type="string", description="glave config (path or s3:// URI); empty: defaults."),
    },
) as dag:
    evaluate = glave_task(
        config, task_id="evaluate", subcommand=["evaluate"], run_id=RUN_ID, family=FAMILY, resources=RESOURCES,
        timeout_min=config.orchestration.stage_timeout_min.get("evaluate", 240), **PARAMS,
        options={"--questions": "{{ params.questions }}", **NAME, **BASELINE},
        flags=("--json", "--no-fail-on-regression"), want_result=True,
    )
    report = glave_task(config, task_id="report", subcommand=["report"], run_id=RUN_ID, **PARAMS)
    mlflow_log = glave_task(config, task_id="mlflow_log", subcommand=["mlflow-log"], run_id=RUN_ID, **PARAMS)
    regression = glave_task(config, task_id="regression", subcommand=["evaluate-compare"], run_id=RUN_ID, **PARAMS,
                            options={**NAME, **BASELINE}, flags=("--json",), retries=0)

    evaluate >> report >> mlflow_log >> regression
