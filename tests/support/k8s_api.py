"""A Kubernetes API client that records the requests the real client library sends and answers
them from memory, and the RBAC view of each request (what the API server would authorize).

The generated ``kubernetes.client`` API classes run unchanged on top of it (URL building, body
serialisation, response decoding); only the HTTP round trip is replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class ApiCall:
    """One request as RBAC sees it: API group, resource (``deployments/status``), verb, namespace, name."""

    group: str
    resource: str
    verb: str
    namespace: str | None
    name: str | None


def rbac_view(method: str, url: str) -> ApiCall:
    """The API server's request attributes for a resource request (its RequestInfo rules)."""
    parsed = urlparse(url)
    parts = [p for p in parsed.path.split("/") if p]
    if parts[0] == "api":  # /api/v1/...: the core group
        group, rest = "", parts[2:]
    elif parts[0] == "apis":  # /apis/<group>/<version>/...
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"not a resource request: {url}")
    namespace = None
    if len(rest) > 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
    method = method.upper()
    if method == "GET":
        watch = parse_qs(parsed.query).get("watch", ["false"])[0] in ("true", "1")
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[method]
    return ApiCall(group, f"{resource}/{sub}" if sub else resource, verb, namespace, name)


class _Response:
    """What ``ApiClient`` reads from a urllib3 response."""

    def __init__(self, status: int, payload: Any) -> None:
        self.status, self.reason, self.data = status, "OK", json.dumps(payload).encode()

    def getheaders(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.getheaders().get(name.lower(), default)


class RecordingApiClient(ApiClient):  # type: ignore[misc]  # the client library is untyped
    """Answers from an in-memory object store keyed by URL path; records every request.

    ``fail`` maps ``(verb, resource)`` to an HTTP status returned once (409 for a create that
    finds the object already there, 404 for a delete of something gone). ``available_after``:
    how many status reads report no available replica before one does. A Deployment's pods are
    what :meth:`add_pods` puts there (the controller and the kubelet are not simulated); they go
    with their Deployment, as garbage collection removes them.
    """

    def __init__(self, *, fail: dict[tuple[str, str], int] | None = None, available_after: int = 0) -> None:
        config = Configuration()
        config.host = "https://kubernetes.invalid"
        super().__init__(configuration=config)
        self.calls: list[ApiCall] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.fail = dict(fail or {})
        self.unavailable_reads = available_after

    def request(self, method: str, url: str, query_params: Any = None, headers: Any = None, post_params: Any = None,
                body: Any = None, _preload_content: bool = True, _request_timeout: Any = None) -> _Response:
        full = url + ("?" + "&".join(f"{k}={v}" for k, v in query_params) if query_params else "")
        call = rbac_view(method, full)
        self.calls.append(call)
        status = self.fail.pop((call.verb, call.resource), None)
        if status is not None:
            exc = ApiException(status=status, reason="injected")
            exc.body = b"{}"  # the client decodes the body of an error
            raise exc
        path = urlparse(url).path
        if call.verb == "create":
            name = body["metadata"]["name"]
            self.objects[f"{path}/{name}"] = body
            return _Response(201, body)
        if call.verb in ("update", "patch"):
            self.objects[path] = body
            return _Response(200, body)
        if call.verb == "delete":
            gone = self.objects.pop(path, None)
            if gone is not None and call.resource == "deployments":
                for key in self._pods(call.namespace, gone["spec"]["selector"]):
                    del self.objects[key]
            return _Response(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if call.verb == "list" and call.resource == "pods":
            wanted = dict(query_params or []).get("labelSelector", "")
            selector = {"matchLabels": dict(term.split("=", 1) for term in wanted.split(",") if term)}
            assert all("!" not in v and "=" not in v for v in selector["matchLabels"].values()), wanted
            items = [self.objects[key] for key in self._pods(call.namespace, selector)]
            return _Response(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        if call.verb == "get" and call.resource.endswith("/status"):
            obj = self.objects[path.rsplit("/", 1)[0]]
            ready = 0 if self.unavailable_reads > 0 else 1
            self.unavailable_reads -= 1
            return _Response(200, {**obj, "status": {"replicas": 1, "availableReplicas": ready}})
        raise AssertionError(f"unexpected request {method} {url}")


    def _pods(self, namespace: str | None, selector: dict[str, Any]) -> list[str]:
        prefix = f"/api/v1/namespaces/{namespace}/pods/"
        return [key for key, obj in self.objects.items()
                if key.startswith(prefix) and selects(selector, obj["metadata"].get("labels") or {})]

    def add_pods(self, deployment: str, statuses: list[dict[str, Any]]) -> list[str]:
        """Pods of the Deployment named ``deployment`` (created before), one per pod ``status``
        as the kubelet reports it; returns their names."""
        (obj,) = [o for k, o in self.objects.items() if "/deployments/" in k and o["metadata"]["name"] == deployment]
        meta = obj["metadata"]
        names = []
        for i, status in enumerate(statuses):
            name = f"{deployment}-{i}"
            self.objects[f"/api/v1/namespaces/{meta['namespace']}/pods/{name}"] = {
                "apiVersion": "v1", "kind": "Pod", "status": status,
                "metadata": {"name": name, "namespace": meta["namespace"],
                             "labels": obj["spec"]["template"]["metadata"]["labels"]},
            }
            names.append(name)
        return names


def allowed(call: ApiCall, rules: list[dict[str, Any]]) -> bool:
    """Whether one of a Role's rules grants ``call`` (group, resource, verb, resourceNames)."""
    for rule in rules:
        if call.group not in rule.get("apiGroups", []) or call.resource not in rule.get("resources", []):
            continue
        if call.verb not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames")
        if names and call.name not in names:
            continue
        return True
    return False


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) a Role's rules name."""
    return {(g, r, v) for rule in rules for g in rule.get("apiGroups", []) for r in rule.get("resources", [])
            for v in rule.get("verbs", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects these labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def server_pod_status(*, restarts: int = 0, started: str | None = "2026-01-01T00:00:00Z",
                      container_started: str | None = None, ready_at: str | None = "2026-01-01T00:02:30Z",
                      running: bool = True) -> dict[str, Any]:
    """A model server pod's status as the kubelet reports it. ``started``: the pod's start;
    ``container_started``: its container's current start (after ``restarts`` restarts);
    ``ready_at``: when it last turned Ready (None: not ready); ``running``: False for a pod still
    waiting for its first container start (an image pull)."""
    container: dict[str, Any] = {"name": "vllm", "image": "glave-llm", "imageID": "", "ready": ready_at is not None,
                                 "restartCount": restarts}
    if running:
        container["state"] = {"running": {"startedAt": container_started or started}}
    else:
        container["state"] = {"waiting": {"reason": "ContainerCreating"}}
    status: dict[str, Any] = {"phase": "Running" if running else "Pending", "containerStatuses": [container],
                              "conditions": [{"type": "Ready", "status": "True" if ready_at else "False",
                                              "lastTransitionTime": ready_at or started}]}
    if started:
        status["startTime"] = started
    return status
