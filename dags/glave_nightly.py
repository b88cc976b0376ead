"""glave_nightly: new videos under the input prefix -> annotated, validated, published dataset.

discover (the shard list via XCom) -> per shard, mapped: ingest -> track -> caption -> bridge -> qa ->
validate -> report -> publish (gated by validation's critical checks; emits the dataset Asset) ->
mlflow_log. Each stage of each shard is its own task instance: a failed shard retries, or is
cleared, alone. Tasks run ``glave`` commands in pods (``orchestration.executor: kubernetes``) or
as local subprocesses (embedded default). No business logic and no heavy imports here.

Config: ``GLAVE_CONFIG`` (path or s3:// URI) plus ``GLAVE__SECTION__FIELD`` overrides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Asset, Param, TriggerRule, task_group

from glave_tasks.language.model_server import server_needed
from glave_tasks.stages import available, stage_class
from operators.factory import dag_config, glave_task, stage_task
from operators.model_server import model_server_task
from operators.publishing import dataset_asset_uri

# GLAVE_CONFIG goes to every task; parsing reads it only when it is a local file (never S3).
CONFIG_URI, config = dag_config()
STAGES = available()

# The pipeline run id is the date partition, so a re-triggered night reuses committed shards.
RUN_ID = "nightly-{{ params.run_date or ds }}"
PARAMS: dict[str, Any] = {"config_uri": "{{ params.config_uri }}", "store_uri": "{{ params.store_uri }}"}
DATASET = Asset(name="glave_dataset", uri=dataset_asset_uri(config), group="glave")

with DAG(
    dag_id="glave_nightly",
    schedule=config.orchestration.schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["glave"],
    doc_md=__doc__,
    params={
        "input_prefix": Param(config.orchestration.input_prefix, type="string", minLength=1,
                              description="Folder or s3:// prefix holding the night's videos."),
        "store_uri": Param(config.store.root, type="string", minLength=1, description="Artifact store root."),
        "config_uri": Param(CONFIG_URI, type="string", description="glave config (path or s3:// URI); empty: defaults."),
        "run_date": Param("", type="string", pattern=r"^(\d{4}-\d{2}-\d{2})?$",
                          description="Date partition (YYYY-MM-DD); empty: the run's logical date."),
        "shard_size": Param(config.run.shard_size, type="integer", minimum=1, maximum=10_000),
        "max_videos": Param(config.run.max_videos, type=["null", "integer"], minimum=1),
        "reprocess": Param(False, type="boolean", description="Include videos this pipeline version already annotated."),
        "stages": Param(STAGES, type="array", minItems=1, uniqueItems=True,
                        items={"type": "string", "enum": STAGES}, description="Stages to run (others skip)."),
    },
) as dag:
    discover = glave_task(
        config, task_id="discover", subcommand=["discover"], run_id=RUN_ID, **PARAMS,
        options={"--input": "{{ params.input_prefix }}", "--shard-size": "{{ params.shard_size }}",
                 "--max-videos": "{{ params.max_videos }}", "--reprocess": "{{ params.reprocess }}"},
        flags=("--json",), result_key="shards",
    )

    # One model server per run (engine backend vllm): started once as a setup task while ingest
    # and track run, used by caption, bridge and qa of every shard, torn down even on failure.
    server_start = server_stop = None
    if server_needed(config):
        server_start = model_server_task(config, "start", run_id=RUN_ID, **PARAMS)
        server_stop = model_server_task(config, "stop", run_id=RUN_ID, **PARAMS,
                                        trigger_rule=TriggerRule.ALL_DONE)
        discover >> server_start

    @task_group(group_id="shard")
    def per_shard(shard: int) -> None:
        previous = None
        for name in STAGES:
            # none_failed: a stage left out by the `stages` param skips without skipping the rest.
            current = stage_task(config, name, run_id=RUN_ID, shard=shard, **PARAMS,
                                 trigger_rule=TriggerRule.NONE_FAILED if previous is not None else TriggerRule.ALL_SUCCESS)
            if previous is not None:
                previous >> current
            if server_start is not None and server_stop is not None and stage_class(name).family == "llm":
                server_start >> current >> server_stop  # the server lives from the first to the last LLM stage
            previous = current

    shards = per_shard.expand(shard=discover.output)

    report = glave_task(config, task_id="report", subcommand=["report"], run_id=RUN_ID, **PARAMS,
                        trigger_rule=TriggerRule.ALL_DONE)
    publish = glave_task(config, task_id="publish", subcommand=["publish"], run_id=RUN_ID, **PARAMS,
                         outlets=[DATASET])
    mlflow_log = glave_task(config, task_id="mlflow_log", subcommand=["mlflow-log"], run_id=RUN_ID, **PARAMS,
                            trigger_rule=TriggerRule.ALL_DONE)

    discover >> shards >> report >> publish >> mlflow_log
    # The report runs ALL_DONE so that a failed night is still described; publish does not: it
    # waits (ALL_SUCCESS, the default) on every shard's last stage as well as on the report, so a
    # single failed or skipped shard leaves the night unpublished (`glave publish` checks again).
    shards >> publish
    if server_start is not None and server_stop is not None:
        server_stop.as_teardown(setups=server_start)  # runs even when shards failed
        # MLflow gets the server's engine starts once it is gone: the local record's final state,
        # or what the Kubernetes teardown read from the server pods (logged to the same run).
        server_stop >> mlflow_log
