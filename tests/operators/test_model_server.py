"""The run's model server, as the cluster and the DAG see it: a schema-valid, readiness-probed
GPU Deployment and its Service; setup and teardown tasks around the LLM stages; stage pods of
caption, bridge and qa without a GPU; stages find the server through the run's record."""

from __future__ import annotations

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
    assert container["command"] == ["glave"]
    assert container["args"][:2] == ["model-server", "serve"] and "/etc/glave/config.yaml" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
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
