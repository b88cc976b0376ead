"""The one place that decides how a ``glave`` command becomes an Airflow task.

``orchestration.executor`` picks the operator: ``kubernetes`` builds a :class:`GlavePodOperator`
(the stage family's image, the stage's declared resources), ``local`` a
:class:`GlaveLocalOperator` running the identical command as a subprocess. Retries, timeouts
and GPU concurrency are set here too, so the DAG file only wires tasks together.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from glave_tasks.config import GlaveConfig, load_config
from glave_tasks.contract import Resources
from glave_tasks.stages import stage_class

if TYPE_CHECKING:
    from .glave_operator import GlaveOperator

# Report, publish and tracking are light CPU work.
COMMAND_RESOURCES = Resources(cpu="1", memory="2Gi", gpus=0, ephemeral_storage="5Gi")
COMMAND_TIMEOUT_MIN = 60


def dag_config() -> tuple[str, GlaveConfig]:
    """The config URI the tasks get (``GLAVE_CONFIG``) and the config that shapes the DAG at parse time.

    Schedulers parse DAG files every few seconds, so parsing never reads remote storage: a local
    ``GLAVE_CONFIG`` (the overlay's ConfigMap, mounted at the same path in Airflow's workers and in
    the pods) is read; an ``s3://`` one is only handed to the tasks, which load it when they run,
    and the DAG's shape (schedule, pools, model server tasks) comes from the defaults and the
    ``GLAVE__`` environment.
    """
    uri = os.environ.get("GLAVE_CONFIG") or ""
    local = uri if uri and ("://" not in uri or uri.startswith("file://")) else None
    return uri, load_config(local)


def retry_kwargs(config: GlaveConfig, timeout_min: int) -> dict[str, Any]:
    o = config.orchestration
    return {
        "retries": o.retries,
        "retry_delay": timedelta(seconds=o.retry_delay_s),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=o.max_retry_delay_s),
        "execution_timeout": timedelta(minutes=timeout_min),
    }


def glave_task(config: GlaveConfig, *, task_id: str, family: str = "cpu", resources: Resources = COMMAND_RESOURCES,
               timeout_min: int | None = None, **params: Any) -> GlaveOperator:
    """The operator running one ``glave`` command for the configured executor.

    ``family`` and ``resources`` size a pod (ignored by the local executor); ``timeout_min`` bounds
    one attempt. ``params`` are the command's parameters, documented on :class:`GlaveOperator`
    (subcommand, run_id, shard, config_uri, store_uri, options, flags, select_stage, want_result,
    result_key), and Airflow's own operator arguments.
    """
    o = config.orchestration
    params = {"task_id": task_id, **retry_kwargs(config, timeout_min or COMMAND_TIMEOUT_MIN), **params}
    if resources.gpus > 0:
        # Mapped GPU shards queue here instead of piling pending pods onto the cluster.
        params.setdefault("max_active_tis_per_dag", o.gpu_concurrency)
    if o.executor == "kubernetes":
        from .pod import GlavePodOperator

        if resources.gpus > 0:
            params.setdefault("pool", o.gpu_pool)
            params.setdefault("pool_slots", resources.gpus)
        slug = task_id.replace("_", "-")
        return GlavePodOperator(glave_config=config, family=family, resources=resources, pod_name=f"glave-{slug}",
                                pod_labels={"glave.io/task": slug}, **params)
    from .local import GlaveLocalOperator

    return GlaveLocalOperator(python=o.local_python.get(family), aws_conn_id=o.aws_conn_id, launcher=o.launcher,
                              **params)


def stage_task(config: GlaveConfig, name: str, **params: Any) -> GlaveOperator:
    """``glave stage <name> --run-id R --shard K``, sized, placed and timed by the stage's class."""
    cls = stage_class(name)
    stage = cls(config)
    return glave_task(
        config, task_id=name, family=cls.family, resources=stage.resources(),
        timeout_min=config.orchestration.stage_timeout_min.get(name, cls.timeout_min),
        **{"subcommand": ["stage", name], "flags": ("--json",), "select_stage": name, "want_result": True, **params},
    )
