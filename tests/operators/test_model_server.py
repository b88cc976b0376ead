"""The run's model server, as the cluster and the DAG see it: a schema-valid, readiness-probed
GPU Deployment and its Service; setup and teardown tasks around the LLM stages; stage pods of
caption, bridge and qa without a GPU; stages find the server through the run's record; the
teardown counts the Deployment's engine starts from its pods and logs them to MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from glave_tasks.config import GlaveConfig
from glave_tasks.errors import GlaveError
from glave_tasks.language import model_server as ms
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from operators.model_server import server_manifests
from operators.render import config_for
from tests.support import make_config
from tests.support.dag import load_dag_module
from tests.support.k8s_api import RecordingApiClient, server_pod_status

K8S_VERSION = "1.37.0"
LLM_STAGES = ("caption", "bridge", "qa")


@pytest.fixture
def prod() -> GlaveConfig:
    config = config_for(None, "prod")
    assert config.engine.backend == "vllm"
    return config


def test_server_manifests_are_valid_and_readiness_probed(prod: GlaveConfig) -> None:
    deployment, service = server_manifests(prod, "nightly-2026-01-01", "/etc/glave/config.yaml")
    for manifest in (deployment, service):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    name = ms.service_name("nightly-2026-01-01")
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == name and len(name) <= 63
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/usr/bin/tini", "--", "glave"]  # the image's ENTRYPOINT
    assert pod["spec"]["terminationGracePeriodSeconds"] == 60
    assert container["args"][:2] == ["model-server", "serve"] and "/etc/glave/config.yaml" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # A dead or wedged server is restarted by the kubelet while its clients wait for it.
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["failureThreshold"] > container["readinessProbe"]["failureThreshold"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert pod["spec"].get("restartPolicy", "Always") == "Always"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(prod.engine.tensor_parallel_size)
    assert pod["spec"]["nodeSelector"] == prod.orchestration.k8s.gpu_node_selector
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # The Service selects exactly the server's pods, on the port the stages are told.
    selector = service["spec"]["selector"]
    assert all(pod["metadata"]["labels"][k] == v for k, v in selector.items())
    assert service["spec"]["ports"][0]["port"] == ms.SERVICE_PORT
    assert ms.service_url(prod, "nightly-2026-01-01") == f"http://{name}.{prod.orchestration.k8s.namespace}.svc:8000/v1"


def test_llm_stage_pods_need_no_gpu_when_the_run_has_a_server(prod: GlaveConfig) -> None:
    for name in LLM_STAGES:
        assert build_stage(name, prod).resources().gpus == 0
    in_process = prod.model_copy(update={"model_server": prod.model_server.model_copy(update={"mode": "in_process"})})
    for name in LLM_STAGES:
        assert build_stage(name, in_process).resources().gpus == prod.engine.tensor_parallel_size


def test_serve_flags_follow_the_engine_config(prod: GlaveConfig) -> None:
    gpu = ms.serve_args(prod, "/cache/w", host="0.0.0.0", port=8000, device="cuda")
    cpu = ms.serve_args(prod, "/cache/w", host="127.0.0.1", port=9, device="cpu")
    e = prod.engine
    assert gpu[gpu.index("--model") + 1] == "/cache/w" and gpu[gpu.index("--served-model-name") + 1] == ms.served_name(e)
    assert gpu[gpu.index("--max-model-len") + 1] == str(e.max_model_len)
    assert "--gpu-memory-utilization" in gpu and "--gpu-memory-utilization" not in cpu  # CPU: VLLM_CPU_KVCACHE_SPACE
    assert "xgrammar" in gpu[gpu.index("--structured-outputs-config") + 1]


@pytest.mark.parametrize("executor", ["local", "kubernetes"])
def test_dag_starts_one_server_as_setup_and_tears_it_down(tmp_path: Path, executor: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    dag = load_dag_module({"GLAVE__ENGINE__BACKEND": "vllm", "GLAVE__ENGINE__MODEL": "m",
                           "GLAVE__ORCHESTRATION__EXECUTOR": executor}).dag
    start, stop = dag.get_task("model_server_start"), dag.get_task("model_server_stop")
    assert start.is_setup and stop.is_teardown
    assert {f"shard.{s}" for s in LLM_STAGES} <= start.downstream_task_ids
    assert {f"shard.{s}" for s in LLM_STAGES} <= stop.upstream_task_ids
    assert "shard.ingest" not in start.downstream_task_ids  # it warms up while ingest and track run
    assert "mlflow_log" in stop.downstream_task_ids  # MLflow gets the server's final engine starts
    # The rules engine needs no server.
    rules = load_dag_module({"GLAVE__ORCHESTRATION__EXECUTOR": executor}).dag
    assert "model_server_start" not in rules.task_ids


def test_stages_find_the_server_through_the_runs_record(tmp_path: Path) -> None:
    config = make_config(tmp_path, engine={"backend": "vllm", "model": "tiny", "revision": "r1"},
                         model_server={"device": "cpu"})
    store = ArtifactStore(config.store.root)
    # No server yet: a clear error naming the ways to start one.
    with pytest.raises(GlaveError, match="model-server start"):
        build_stage("caption", ms.attach(config, store, "r-1")).setup()
    store.write_json(ms.record_key("r-1"), {"url": "http://127.0.0.1:9/v1", "device": "cpu", "kind": "local"})
    attached = ms.attach(config, store, "r-1")
    assert attached.model_server.url == "http://127.0.0.1:9/v1"
    assert attached.section_hash("engine") == config.section_hash("engine")  # fingerprints do not move
    stage: Any = build_stage("caption", attached)
    stage.setup()
    assert stage.engine.generator == "vllm" and stage.engine.model_id == "tiny"
    assert stage.engine.model_revision == "r1" and stage.engine.per_request_seed is False
    assert stage.engine.config.base_url == "http://127.0.0.1:9/v1"
    stage.engine.close()
    # Stopping with nothing running is safe; the record says it stopped.
    assert ms.stop_local(store, "r-1")["stopped_at"]


def test_stage_pods_tell_per_video_pools_their_cpu_request(prod: GlaveConfig) -> None:
    from operators.render import render_pods

    for pod in render_pods(prod, "nightly-2026-01-01", 0, store_uri=prod.store.root):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        assert env["GLAVE_CPUS"] == pod["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def _pods(*statuses: dict[str, Any]) -> list[Any]:
    from kubernetes.client import ApiClient, V1Pod

    class _Wire:  # what ApiClient.deserialize reads: a response's JSON body
        def __init__(self, obj: Any) -> None:
            self.data = json.dumps(obj)

    return [ApiClient().deserialize(_Wire({"metadata": {"name": f"p{i}"}, "status": s}), V1Pod)
            for i, s in enumerate(statuses)]


def test_engine_starts_are_container_starts_of_server_pods_that_ran() -> None:
    from operators.model_server import server_starts

    # One pod, started once, Ready 150 s after it started: one engine start.
    assert server_starts(_pods(server_pod_status())) == {"engine_starts": 1.0, "startup_s": 150.0}
    # Restarted twice (a crash, a failed liveness probe): three starts; the startup is the
    # current container's, not the pod's.
    restarted = server_pod_status(restarts=2, container_started="2026-01-01T01:00:00Z", ready_at="2026-01-01T01:01:40Z")
    assert server_starts(_pods(restarted)) == {"engine_starts": 3.0, "startup_s": 100.0}
    # A pod still pulling its image has started no engine; a pod never ready has no startup time.
    assert server_starts(_pods(server_pod_status(running=False, ready_at=None))) == {"engine_starts": 0.0}
    assert server_starts(_pods(server_pod_status(ready_at=None))) == {"engine_starts": 1.0}
    # A replacement pod (its predecessor's node lost, the old one not yet deleted): both count,
    # the newest ready one gives the startup.
    replacement = server_pod_status(started="2026-01-01T02:00:00Z", ready_at="2026-01-01T02:03:00Z")
    assert server_starts(_pods(server_pod_status(ready_at=None), replacement)) == {"engine_starts": 2.0,
                                                                                   "startup_s": 180.0}


def test_kubernetes_teardown_logs_engine_starts_to_the_runs_mlflow_run(prod: GlaveConfig, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The Deployment path reports what a local server's record does: the teardown reads the
    server pods through the Kubernetes API, then logs ``model_server.engine_starts`` and
    ``startup_s`` on the MLflow run that ``glave mlflow-log`` logs the rest of the run to."""
    from kubernetes import client
    from mlflow import MlflowClient

    import operators.model_server as mso
    from glave_tasks.mlflow_log import RUN_TAG, STAGE_TAG, log_model_server

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = prod.model_copy(update={"mlflow": prod.mlflow.model_copy(update={
        "tracking_uri": uri, "artifact_location": str(tmp_path / "artifacts")})})
    api = RecordingApiClient()
    monkeypatch.setattr(mso.ModelServerOperator, "_apis", lambda self: (client.AppsV1Api(api), client.CoreV1Api(api)))

    def operator(action: str) -> Any:
        return mso.ModelServerOperator(task_id=f"model_server_{action}", glave_config=config, action=action,
                                       run_id="nightly-2026-01-01", store_uri="s3://glave/store").execute(context={})

    operator("start")
    api.add_pods(ms.service_name("nightly-2026-01-01"), [server_pod_status(restarts=1, ready_at="2026-01-01T00:04:00Z",
                                                                            container_started="2026-01-01T00:02:00Z")])
    assert operator("stop") == {"service": ms.service_name("nightly-2026-01-01"), "engine_starts": 2.0,
                                "startup_s": 120.0}
    assert not api.objects  # the pods went with their Deployment
    assert operator("stop") == {"service": ms.service_name("nightly-2026-01-01")}  # a repeated teardown logs nothing

    mlflow = MlflowClient(tracking_uri=uri)
    exp = mlflow.get_experiment_by_name(config.mlflow.experiment)
    (run,) = mlflow.search_runs([exp.experiment_id])
    assert run.data.tags[RUN_TAG] == "nightly-2026-01-01" and run.data.tags[STAGE_TAG] == "pipeline"
    assert run.data.tags["glave.store"] == "s3://glave/store"
    assert run.data.metrics == {"model_server.engine_starts": 2.0, "model_server.startup_s": 120.0}
    # The run's own MLflow logging finds the same run rather than making a second one.
    assert log_model_server(config, "nightly-2026-01-01", {"engine_starts": 2.0}, store_root="s3://glave/store") \
        == run.info.run_id
    assert len(mlflow.search_runs([exp.experiment_id])) == 1


def test_teardown_that_cannot_reach_mlflow_still_deletes_the_server(prod: GlaveConfig,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client

    import operators.model_server as mso

    def unreachable(*a: Any, **k: Any) -> str:
        raise ConnectionError("mlflow.mlflow.svc.cluster.local:5000 refused")

    monkeypatch.setattr("glave_tasks.mlflow_log.log_model_server", unreachable)
    api = RecordingApiClient()
    monkeypatch.setattr(mso.ModelServerOperator, "_apis", lambda self: (client.AppsV1Api(api), client.CoreV1Api(api)))
    common = {"glave_config": prod, "run_id": "r-1"}
    mso.ModelServerOperator(task_id="model_server_start", action="start", **common).execute(context={})
    api.add_pods(ms.service_name("r-1"), [server_pod_status()])
    out = mso.ModelServerOperator(task_id="model_server_stop", action="stop", **common).execute(context={})
    assert out["engine_starts"] == 1.0 and not api.objects
