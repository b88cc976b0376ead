"""What a stage's pod looks like: image, resources, scheduling, identity, secrets, hardening.

Everything here comes from the config (``orchestration.k8s``) and the stage's declared
``Resources``; nothing is specific to one stage. Credentials reach the container only as
references to Kubernetes Secrets (``envFrom``), never as values.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import models as k8s

from glave_tasks.config import GlaveConfig
from glave_tasks.contract import Resources

GPU_RESOURCE = "nvidia.com/gpu"
# The container's command, as the images' ENTRYPOINT has it: tini as PID 1 passes SIGTERM on to
# glave and reaps what it leaves. A pod's ``command`` replaces the ENTRYPOINT, so it says the same.
CONTAINER_COMMAND = ["/usr/bin/tini", "--", "glave"]
# Seconds between SIGTERM (eviction, a cancelled task) and SIGKILL. A stage stops in seconds (its
# workers killed, the shard marked terminated, its leases released); the rest is room for store
# retries of those two writes. A lease not released in time expires after its TTL.
TERMINATION_GRACE_S = 60


def image_for(config: GlaveConfig, family: str) -> str:
    k = config.orchestration.k8s
    if family not in k.images:
        raise ValueError(f"no image configured for stage family {family!r} (orchestration.k8s.images)")
    return f"{k.image_registry.rstrip('/')}/{k.images[family]}:{k.image_tag}"


def container_resources(res: Resources) -> k8s.V1ResourceRequirements:
    requests = {"cpu": res.cpu, "memory": res.memory, "ephemeral-storage": res.ephemeral_storage}
    # Memory limit = request so a leaking stage is OOM-killed instead of starving its node; no CPU
    # limit (throttling only slows batch work down).
    limits: dict[str, str] = {"memory": res.memory, "ephemeral-storage": res.ephemeral_storage}
    if res.gpus > 0:
        limits[GPU_RESOURCE] = str(res.gpus)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def container_security_context(config: GlaveConfig) -> k8s.V1SecurityContext:
    uid = config.orchestration.k8s.run_as_user
    return k8s.V1SecurityContext(
        run_as_non_root=True, run_as_user=uid, run_as_group=uid,
        allow_privilege_escalation=False, read_only_root_filesystem=True, privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def pod_security_context(config: GlaveConfig) -> k8s.V1PodSecurityContext:
    uid = config.orchestration.k8s.run_as_user
    return k8s.V1PodSecurityContext(
        run_as_non_root=True, run_as_user=uid, run_as_group=uid, fs_group=uid,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def scratch_volumes(config: GlaveConfig, family: str) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    """Writable space on a read-only root: /tmp and the cache are emptyDirs; GPU engines get /dev/shm."""
    k = config.orchestration.k8s
    volumes = [
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="2Gi")),
        k8s.V1Volume(name="cache", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=k.scratch_size)),
    ]
    mounts = [
        k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        k8s.V1VolumeMount(name="cache", mount_path=k.cache_dir),
    ]
    if k.config_map:
        volumes.append(k8s.V1Volume(name="glave-config", config_map=k8s.V1ConfigMapVolumeSource(name=k.config_map)))
        mounts.append(k8s.V1VolumeMount(name="glave-config", mount_path=k.config_dir, read_only=True))
    if family != "cpu":
        # PyTorch data loaders and vLLM's workers share tensors through /dev/shm (64 MiB by default).
        volumes.append(k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit="8Gi")))
        mounts.append(k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"))
    return volumes, mounts


def env_vars(config: GlaveConfig) -> dict[str, str]:
    """Non-secret environment: caches on the writable emptyDir, telemetry off, offline hubs."""
    cache = config.orchestration.k8s.cache_dir
    env = {
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "XDG_CACHE_HOME": cache,
        "HF_HOME": f"{cache}/hf",
        "TORCH_HOME": f"{cache}/torch",
        "YOLO_CONFIG_DIR": f"{cache}/ultralytics",
        "MPLCONFIGDIR": f"{cache}/matplotlib",
        "GLAVE__STORE__LOCAL_CACHE": f"{cache}/store",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "YOLO_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(config.orchestration.k8s.extra_env)
    return env


def secret_sources(config: GlaveConfig, family: str) -> list[k8s.V1EnvFromSource]:
    """S3 credentials for every pod, LLM API keys for LLM pods; optional so IRSA setups need none."""
    k = config.orchestration.k8s
    names = [k.s3_secret_name] + ([k.llm_secret_name] if family == "llm" else [])
    return [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=n, optional=True)) for n in names]


def pod_kwargs(config: GlaveConfig, *, family: str, resources: Resources, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments for one stage family and its resources."""
    k = config.orchestration.k8s
    gpu = resources.gpus > 0
    volumes, mounts = scratch_volumes(config, family)
    sc = container_security_context(config)
    return {
        "namespace": k.namespace,
        "image": image_for(config, family),
        "image_pull_policy": k.image_pull_policy,
        "name": name,
        "labels": {"app.kubernetes.io/name": "glave", "app.kubernetes.io/part-of": "glave",
                   "glave.io/family": family, **labels},
        "container_resources": container_resources(resources),
        "node_selector": dict(k.gpu_node_selector) if gpu else None,
        "tolerations": [k8s.V1Toleration(**t) for t in k.gpu_tolerations] if gpu else None,
        "service_account_name": k.service_account,
        # Stage pods never talk to the Kubernetes API.
        "automount_service_account_token": False,
        # Per-video process pools size themselves by the pod's CPU request (glave_tasks.parallel).
        "env_vars": {**env_vars(config), "GLAVE_CPUS": resources.cpu},
        "env_from": secret_sources(config, family),
        "volumes": volumes,
        "volume_mounts": mounts,
        "security_context": pod_security_context(config),
        "container_security_context": sc,
        "xcom_sidecar_container_security_context": sc,
        "priority_class_name": k.gpu_priority_class if gpu else k.priority_class,
        # GPU nodes may have to scale up from zero and pull a multi-GB image first.
        "startup_timeout_seconds": k.startup_timeout_s,
        "on_finish_action": k.on_finish_action,
        "termination_message_policy": "FallbackToLogsOnError",
        "termination_grace_period": TERMINATION_GRACE_S,
        "kubernetes_conn_id": k.kubernetes_conn_id,
        "in_cluster": k.in_cluster,
        "get_logs": True,
        "log_events_on_failure": True,
    }
