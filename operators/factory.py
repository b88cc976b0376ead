"""The one place that decides how a ``glave`` command becomes an Airflow task.

``orchestration.executor`` picks the operator: ``kubernetes`` builds a :class:`GlavePodOperator`
(the stage family's image, the stage's declared resources), ``local`` a
:class:`GlaveLocalOperator` running the identical command as a subprocess. Retries, timeouts
and GPU concurrency are set here too, so the DAG file only wires tasks together.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from glave_tasks.config import GlaveConfig
from glave_tasks.contract import Resources
from glave_tasks.stages import stage_class

# Report, publish and tracking are light CPU work.
COMMAND_RESOURCES = Resources(cpu="1", memory="2Gi", gpus=0, ephemeral_storage="5Gi")
COMMAND_TIMEOUT_MIN = 60


def stage_requirements(name: str, config: GlaveConfig) -> tuple[str, Resources]:
    """A stage's image family and declared resources (stage classes are light to import)."""
    stage = stage_class(name)(config)
    return stage.family, stage.resources()


def retry_kwargs(config: GlaveConfig, timeout_min: int) -> dict[str, Any]:
    o = config.orchestration
    return {
        "retries": o.retries,
        "retry_delay": timedelta(seconds=o.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=o.max_retry_delay_s),
        "execution_timeout": timedelta(minutes=timeout_min),
    }


def glave_task(
    config: GlaveConfig,
    *,
    task_id: str,
    subcommand: list[str],
    run_id: str,
    family: str = "cpu",
    resources: Resources = COMMAND_RESOURCES,
    timeout_min: int | None = None,
    shard: Any = None,
    config_uri: str | None = None,
    store_uri: str | None = None,
    options: dict[str, object] | None = None,
    flags: tuple[str, ...] = (),
    select_stage: str | None = None,
    want_result: bool = False,
    result_key: str | None = None,
    **airflow_kwargs: Any,
) -> Any:
    """An operator running ``glave <subcommand> ...`` locally or in a pod, per the config."""
    o = config.orchestration
    common: dict[str, Any] = {
        "task_id": task_id, "subcommand": subcommand, "run_id": run_id, "shard": shard,
        "config_uri": config_uri, "store_uri": store_uri, "options": options or {}, "flags": flags,
        "select_stage": select_stage, "want_result": want_result, "result_key": result_key,
        **retry_kwargs(config, timeout_min or COMMAND_TIMEOUT_MIN),
    }
    if resources.gpus > 0:
        # Mapped GPU shards queue here instead of piling pending pods onto the cluster.
        common["max_active_tis_per_dag"] = o.gpu_concurrency
    common.update(airflow_kwargs)
    if o.executor == "kubernetes":
        from .pod import GlavePodOperator

        if resources.gpus > 0:
            common.setdefault("pool", o.gpu_pool)
            common.setdefault("pool_slots", resources.gpus)
        slug = task_id.replace("_", "-")
        return GlavePodOperator(**common, glave_config=config, family=family, resources=resources,
                                pod_name=f"glave-{slug}", pod_labels={"glave.io/task": slug})
    from .local import GlaveLocalOperator

    return GlaveLocalOperator(**common, python=o.local_python.get(family), aws_conn_id=o.aws_conn_id)


def stage_task(config: GlaveConfig, name: str, *, run_id: str, shard: Any, config_uri: str | None = None,
               store_uri: str | None = None, **airflow_kwargs: Any) -> Any:
    """``glave stage <name> --run-id R --shard K``, sized and placed by the stage's declaration."""
    family, resources = stage_requirements(name, config)
    o = config.orchestration
    return glave_task(
        config, task_id=name, subcommand=["stage", name], run_id=run_id, family=family, resources=resources,
        timeout_min=o.stage_timeout_min.get(name, stage_class(name).timeout_min), shard=shard, config_uri=config_uri,
        store_uri=store_uri, flags=("--json",), select_stage=name, want_result=True, **airflow_kwargs,
    )
