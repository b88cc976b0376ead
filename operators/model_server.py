"""The run's model server as Airflow setup and teardown tasks.

Kubernetes: a Deployment (one replica, the LLM image, the GPU, startup, readiness and liveness
probes on vLLM's ``/health``) and a ClusterIP Service named after the run; the setup task applies both and waits
until the Deployment is available, the teardown task deletes them (teardowns run even when the
shards failed). Stage pods reach it at :func:`glave_tasks.language.model_server.service_url`.
Before deleting, the teardown reads the server pods' container status: every restart of the
server container is another engine start (weights loaded again, CUDA graphs captured again), and
the run's MLflow run gets ``model_server.engine_starts`` and ``model_server.startup_s`` as a local
server's record gives them (:func:`server_starts`).
Embedded default: ``glave model-server start|stop`` as local subprocesses (a ``vllm serve``
process of the LLM environment).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from glave_tasks.config import GlaveConfig
from glave_tasks.contract import Resources
from glave_tasks.language.model_server import SERVICE_PORT, served_name, service_name

SERVER_LABEL = "glave.io/model-server"
CONTAINER = "vllm"  # the server container of the Deployment's pods


def server_resources(config: GlaveConfig) -> Resources:
    """What the server pod needs: the engine's declared resources (GPUs included)."""
    from glave_tasks.language import engine_resources

    return engine_resources(config.engine)


def server_manifests(config: GlaveConfig, run_id: str, config_uri: str | None = None) -> list[dict[str, Any]]:
    """The Deployment and Service of the run's server, as the API server receives them."""
    from kubernetes.client import ApiClient
    from kubernetes.client import models as k8s

    from .pod_spec import (
        CONTAINER_COMMAND,
        TERMINATION_GRACE_S,
        container_resources,
        container_security_context,
        env_vars,
        image_for,
        pod_security_context,
        scratch_volumes,
        secret_sources,
    )

    k = config.orchestration.k8s
    name = service_name(run_id)
    res = server_resources(config)
    labels = {"app.kubernetes.io/name": "glave", "app.kubernetes.io/part-of": "glave",
              "app.kubernetes.io/component": "model-server", "glave.io/family": "llm", SERVER_LABEL: name}
    args = ["model-server", "serve", "--port", str(SERVICE_PORT)]
    if config_uri:
        args += ["--config", config_uri]
    volumes, mounts = scratch_volumes(config, "llm")
    health = k8s.V1HTTPGetAction(path="/health", port="http")
    # Out of the Service after 30 s without health (clients wait for it: engine.server_wait_s);
    # restarted after a minute, so a server slow to answer under load is not killed mid-batch.
    readiness = k8s.V1Probe(http_get=health, period_seconds=10, timeout_seconds=5, failure_threshold=3)
    liveness = k8s.V1Probe(http_get=health, period_seconds=10, timeout_seconds=5, failure_threshold=6)
    container = k8s.V1Container(
        name=CONTAINER, image=image_for(config, "llm"), image_pull_policy=k.image_pull_policy,
        command=list(CONTAINER_COMMAND), args=args,
        ports=[k8s.V1ContainerPort(name="http", container_port=SERVICE_PORT, protocol="TCP")],
        env=[k8s.V1EnvVar(name=n, value=v) for n, v in sorted(env_vars(config).items())],
        env_from=secret_sources(config, "llm"), resources=container_resources(res), volume_mounts=mounts,
        security_context=container_security_context(config),
        # Weights download and CUDA graph capture take minutes: the startup probe allows for it,
        # the readiness probe gates traffic, the liveness probe restarts a wedged engine (vLLM's
        # /health fails once its engine core is dead). A server process that exits is restarted
        # by the kubelet (restartPolicy Always); clients wait for it meanwhile.
        startup_probe=k8s.V1Probe(http_get=health, period_seconds=10,
                                  failure_threshold=max(1, int(config.model_server.startup_timeout_s // 10))),
        readiness_probe=readiness, liveness_probe=liveness,
    )
    gpu = res.gpus > 0
    pod = k8s.V1PodSpec(
        containers=[container], service_account_name=k.service_account, automount_service_account_token=False,
        security_context=pod_security_context(config), volumes=volumes,
        node_selector=dict(k.gpu_node_selector) if gpu else None,
        tolerations=[k8s.V1Toleration(**t) for t in k.gpu_tolerations] if gpu else None,
        priority_class_name=k.gpu_priority_class if gpu else k.priority_class,
        # The server (glave execs vLLM) stops on SIGTERM, which tini hands on to it, like a stage pod.
        termination_grace_period_seconds=TERMINATION_GRACE_S,
    )
    deployment = k8s.V1Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=k8s.V1ObjectMeta(name=name, namespace=k.namespace, labels=labels,
                                  annotations={"glave.io/run-id": run_id,
                                               "glave.io/model": served_name(config.engine)}),
        spec=k8s.V1DeploymentSpec(
            replicas=1, selector=k8s.V1LabelSelector(match_labels={SERVER_LABEL: name}),
            # One GPU server: the old pod goes before a new one is scheduled.
            strategy=k8s.V1DeploymentStrategy(type="Recreate"),
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels), spec=pod),
        ),
    )
    service = k8s.V1Service(
        api_version="v1", kind="Service",
        metadata=k8s.V1ObjectMeta(name=name, namespace=k.namespace, labels=labels),
        spec=k8s.V1ServiceSpec(type="ClusterIP", selector={SERVER_LABEL: name},
                               ports=[k8s.V1ServicePort(name="http", port=SERVICE_PORT, target_port="http",
                                                        protocol="TCP")]),
    )
    client = ApiClient()
    return [client.sanitize_for_serialization(deployment), client.sanitize_for_serialization(service)]


def server_starts(pods: Sequence[Any]) -> dict[str, float]:
    """Engine starts of the run's server, from its pods (``V1Pod``) as the API server reports them.

    A pod whose server container ran counts ``restartCount + 1``: the kubelet restarts a
    container that exited or failed its liveness probe, and each start loads the engine again.
    A pod still waiting for its first start (scheduling, image pull) counts nothing. A pod the
    Deployment replaced and that is gone from the API (its node lost) is not seen.
    ``startup_s``, when known: from the start of the newest ready pod (its container's current
    start after a restart) to its Ready condition, the time a local server's record measures."""
    starts = 0
    newest: Any = None
    startup: float | None = None
    for pod in pods:
        status = pod.status
        container = next((c for c in (status.container_statuses or []) if c.name == CONTAINER), None)
        if container is None:
            continue
        state = container.state
        if not (container.restart_count or (state and (state.running or state.terminated))):
            continue
        starts += container.restart_count + 1
        ready = next((c for c in (status.conditions or []) if c.type == "Ready" and c.status == "True"), None)
        begun = status.start_time if not container.restart_count else (
            state.running.started_at if state and state.running else None)
        if ready is not None and ready.last_transition_time and begun and (newest is None or begun > newest):
            newest, startup = begun, (ready.last_transition_time - begun).total_seconds()
    out: dict[str, float] = {"engine_starts": float(starts)}
    if startup is not None:
        out["startup_s"] = round(startup, 3)
    return out


class ModelServerOperator(BaseOperator):
    """Setup (``action="start"``) or teardown (``"stop"``) of the run's server in Kubernetes."""

    template_fields = ("run_id", "config_uri", "store_uri")
    ui_color = "#f3e8f8"

    def __init__(self, *, glave_config: GlaveConfig, action: str, run_id: str, config_uri: str | None = None,
                 store_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if action not in ("start", "stop"):
            raise ValueError(f"action must be start or stop, not {action!r}")
        self.glave_config, self.action, self.run_id, self.config_uri = glave_config, action, run_id, config_uri
        self.store_uri = store_uri  # tags the run's MLflow run when the teardown is the first to log to it

    def _apis(self) -> tuple[Any, Any]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
        from kubernetes import client

        k = self.glave_config.orchestration.k8s
        api = KubernetesHook(conn_id=k.kubernetes_conn_id, in_cluster=k.in_cluster).api_client
        return client.AppsV1Api(api), client.CoreV1Api(api)

    def _log_mlflow(self, metrics: dict[str, float]) -> None:
        """``model_server.*`` metrics on the run's MLflow run (the one ``glave mlflow-log`` logs to)."""
        if not self.glave_config.mlflow.enabled:
            return
        from glave_tasks.mlflow_log import log_model_server

        store = self.store_uri if self.store_uri not in (None, "", "None") else self.glave_config.store.root
        try:
            log_model_server(self.glave_config, str(self.run_id), metrics, store_root=str(store))
        except Exception:  # noqa: BLE001 - the server is gone either way; the numbers stay in this log
            self.log.exception("model server metrics not logged to MLflow: %s", metrics)

    def execute(self, context: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        apps, core = self._apis()
        ns = self.glave_config.orchestration.k8s.namespace
        name = service_name(str(self.run_id))
        if self.action == "stop":
            # The pods first: deleting the Deployment deletes them, and their status with them.
            pods = core.list_namespaced_pod(ns, label_selector=f"{SERVER_LABEL}={name}").items
            # No pod at all: a repeated teardown after the delete, or a setup that never got that
            # far. Nothing is known then, and nothing is logged over what an earlier one logged.
            metrics = server_starts(pods) if pods else {}
            for delete in (apps.delete_namespaced_deployment, core.delete_namespaced_service):
                try:
                    delete(name, ns)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            self.log.info("model server %s deleted (%s)", name, ", ".join(f"{k}={v:g}" for k, v in metrics.items()))
            if metrics:
                self._log_mlflow(metrics)
            return {"service": name, **metrics}
        config_uri = self.config_uri if self.config_uri not in (None, "", "None") else None
        deployment, service = server_manifests(self.glave_config, str(self.run_id), config_uri)
        for create, replace, body in ((apps.create_namespaced_deployment, apps.replace_namespaced_deployment, deployment),
                                      (core.create_namespaced_service, core.patch_namespaced_service, service)):
            try:
                create(ns, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                replace(name, ns, body)  # a retried setup task: same name, same run
        started = time.monotonic()
        timeout = self.glave_config.model_server.startup_timeout_s
        while time.monotonic() - started < timeout:
            status = apps.read_namespaced_deployment_status(name, ns).status
            if (status.available_replicas or 0) >= 1:
                self.log.info("model server %s ready in %.0f s", name, time.monotonic() - started)
                return {"service": name, "ready_s": round(time.monotonic() - started, 1)}
            time.sleep(10)
        raise TimeoutError(f"model server {name} not available within {timeout:g} s (model_server.startup_timeout_s)")


def model_server_task(config: GlaveConfig, action: str, *, run_id: str, config_uri: str | None = None,
                      store_uri: str | None = None, **airflow_kwargs: Any) -> Any:
    """The setup or teardown task of the run's server, for the configured executor."""
    task_id = f"model_server_{action}"
    if config.orchestration.executor == "kubernetes":
        return ModelServerOperator(task_id=task_id, glave_config=config, action=action, run_id=run_id,
                                   config_uri=config_uri, store_uri=store_uri, **airflow_kwargs)
    from .factory import glave_task

    return glave_task(config, task_id=task_id, subcommand=["model-server", action], run_id=run_id,
                      config_uri=config_uri, store_uri=store_uri, flags=("--json",),
                      timeout_min=int(config.model_server.startup_timeout_s // 60) + 5, **airflow_kwargs)
