"""Every task's pod, as the cluster would receive it: schema-valid, hardened, sized by the stage's
declared resources, GPUs only where a stage asks for them, no secret values anywhere."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from glave_tasks.cli import main as glave
from glave_tasks.stages import available, build_stage
from operators.pod_spec import TERMINATION_GRACE_S
from operators.render import config_for, render_pods

K8S_VERSION = "1.37.0"
SECRET_VALUES = {"AWS_SECRET_ACCESS_KEY": "pod-test-secret-9f3a", "AWS_ACCESS_KEY_ID": "AKIAPODTESTKEY0001",
                 "OPENAI_API_KEY": "sk-pod-test-openai-7c1e"}


@pytest.fixture(params=["default", "dev", "prod"])
def rendered(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[dict[str, Any]]]:
    # Credentials present in the renderer's environment must not leak into any manifest.
    for k, v in SECRET_VALUES.items():
        monkeypatch.setenv(k, v)
    overlay = None if request.param == "default" else request.param
    config = config_for(None, overlay)
    return config, render_pods(config, "nightly-2026-01-01", 3, store_uri=config.store.root)


def _by_task(pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["labels"]["glave.io/task"]: p for p in pods}


def test_every_pod_is_a_valid_kubernetes_object(rendered) -> None:  # type: ignore[no-untyped-def]
    _, pods = rendered
    for pod in pods:
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_one_pod_per_task_running_the_glave_command_for_its_shard(rendered) -> None:  # type: ignore[no-untyped-def]
    _, pods = rendered
    tasks = _by_task(pods)
    assert list(tasks) == ["discover", *available(), "report", "publish", "mlflow-log"]
    for name in available():
        main = tasks[name]["spec"]["containers"][0]
        assert main["command"] == ["/usr/bin/tini", "--", "glave"]  # the images' ENTRYPOINT
        args = main["args"]
        assert args[:2] == ["stage", name]
        assert args[args.index("--run-id") + 1] == "nightly-2026-01-01"
        assert args[args.index("--shard") + 1] == "3"


def test_pods_stop_under_an_init_within_their_grace_period(rendered) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM reaches glave through tini, and the pod allows the stop (failure marker, leases
    released) its time before SIGKILL."""
    _, pods = rendered
    for pod in pods:
        assert pod["spec"]["containers"][0]["command"][:2] == ["/usr/bin/tini", "--"]
        assert pod["spec"]["terminationGracePeriodSeconds"] == TERMINATION_GRACE_S == 60


def test_pods_run_hardened(rendered) -> None:  # type: ignore[no-untyped-def]
    _, pods = rendered
    for pod in pods:
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"]
        assert spec["restartPolicy"] == "Never"
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        main = spec["containers"][0]
        assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"
        mounts = {m["mountPath"] for m in main["volumeMounts"]}
        assert {"/tmp", "/cache"} <= mounts  # writable scratch on a read-only root
        volumes = {v["name"]: v for v in spec["volumes"]}
        # Only scratch space and the read-only glave config: no host paths, no other claims.
        assert all("emptyDir" in v or "configMap" in v for v in volumes.values())
        assert volumes["glave-config"]["configMap"]["name"] == "glave-config"


def test_resources_follow_the_stage_declaration_and_gpus_only_where_declared(rendered) -> None:  # type: ignore[no-untyped-def]
    config, pods = rendered
    tasks = _by_task(pods)
    k = config.orchestration.k8s
    saw_gpu = False
    for name in available():
        declared = build_stage(name, config).resources()
        spec = tasks[name]["spec"]
        res = spec["containers"][0]["resources"]
        assert res["requests"]["cpu"] == declared.cpu and res["requests"]["memory"] == declared.memory
        assert res["limits"]["memory"] == declared.memory
        if declared.gpus:
            saw_gpu = True
            assert res["limits"]["nvidia.com/gpu"] == str(declared.gpus)
            assert spec["nodeSelector"] == k.gpu_node_selector
            assert {t["key"] for t in spec["tolerations"]} == {t["key"] for t in k.gpu_tolerations}
            assert spec["priorityClassName"] == k.gpu_priority_class
        else:
            assert "nvidia.com/gpu" not in res.get("limits", {}) and "nvidia.com/gpu" not in res.get("requests", {})
            assert not spec.get("nodeSelector") and not spec.get("tolerations")
            assert spec["priorityClassName"] == k.priority_class
    # Production puts track and the language stages on GPUs; the embedded default uses none.
    assert saw_gpu == (config.engine.backend == "vllm")


def test_each_stage_runs_its_family_image(rendered) -> None:  # type: ignore[no-untyped-def]
    config, pods = rendered
    tasks = _by_task(pods)
    k = config.orchestration.k8s
    for name in available():
        family = build_stage(name, config).family
        image = tasks[name]["spec"]["containers"][0]["image"]
        assert image == f"{k.image_registry}/{k.images[family]}:{k.image_tag}"


def test_credentials_come_only_from_secret_references(rendered) -> None:  # type: ignore[no-untyped-def]
    config, pods = rendered
    text = yaml.safe_dump_all(pods)
    for value in SECRET_VALUES.values():
        assert value not in text
    tasks = _by_task(pods)
    for name, pod in tasks.items():
        main = pod["spec"]["containers"][0]
        names = {e["name"] for e in main.get("env", [])}
        assert not names & set(SECRET_VALUES), f"{name} carries a credential variable literally"
        refs = [s["secretRef"]["name"] for s in main["envFrom"]]
        assert config.orchestration.k8s.s3_secret_name in refs
        family_is_llm = name in available() and build_stage(name, config).family == "llm"
        assert (config.orchestration.k8s.llm_secret_name in refs) == family_is_llm


def test_gpu_pods_get_shared_memory(rendered) -> None:  # type: ignore[no-untyped-def]
    config, pods = rendered
    for name, pod in _by_task(pods).items():
        mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        family = build_stage(name, config).family if name in available() else "cpu"
        assert ("/dev/shm" in mounts) == (family != "cpu")


def test_render_pods_command_prints_the_same_manifests_as_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert glave(["render-pods", "--run-id", "r-cli", "--overlay", "prod", "--shard", "2"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["Pod"] * (len(available()) + 4)
    track = next(d for d in docs if d["metadata"]["labels"]["glave.io/task"] == "track")
    assert track["metadata"]["namespace"] == "glave"
    assert track["spec"]["containers"][0]["args"][:2] == ["stage", "track"]
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_unknown_overlay_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert glave(["render-pods", "--run-id", "r", "--overlay", "staging"]) == 2
    assert "overlay 'staging'" in capsys.readouterr().err
