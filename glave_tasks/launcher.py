"""Warm launcher: ``glave`` commands started by forking a process that has already imported the
heavy libraries, instead of a fresh interpreter per command.

On one machine every Airflow task is a ``glave`` command; a fresh interpreter spends seconds
importing MLflow, Arrow, Great Expectations, torch and OpenCV before the stage does anything, and
a run has a dozen such tasks per shard. The launcher is a small server on a Unix socket: it
imports those libraries once (:func:`preload_modules`), then for each request forks a child that becomes the command (its own
session and process group, the caller's environment, working directory and arguments; its output
goes to a pipe the caller handed over). The caller gets the child's pid at once and its exit status
when it ends, so killing, timeouts and exit codes behave as for a subprocess. The launcher exits
after ``idle_s`` seconds without a running or new command (``GLAVE_LAUNCHER_IDLE_S``, 300).

Pods do not use it: a pod is one command. Only the local executor does (``orchestration.launcher``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

# What every command imports, whichever stage it runs: the CLI, config, the store and the runner,
# prompts and reports, MLflow. The rest comes from the stages and backends (preload_modules).
BASE_PRELOAD = (
    "numpy", "pyarrow", "pyarrow.parquet", "pyarrow.compute", "fsspec", "s3fs", "pydantic", "yaml", "click",
    "jinja2", "PIL.Image", "mlflow",
    "glave_tasks.cli", "glave_tasks.stages", "glave_tasks.runner", "glave_tasks.store", "glave_tasks.mlflow_log",
)
# Never imported by the launcher, whoever declares them: they start threads, processes or a
# device at import, and a forked child must not inherit those (a module or any of its submodules).
NEVER_PRELOAD = ("vllm", "pycuda.autoinit")
_HEADER = struct.Struct("!I")  # length of the JSON request that follows
_STATUS = struct.Struct("!i")  # the child's pid, then its exit code (negative: killed by that signal)


# Settings libraries read when they are imported: a launcher serves only callers that agree on them.
IMPORT_TIME_ENV = ("HF_", "YOLO_", "MLFLOW_", "TORCH", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS", "OMP_", "MKL_",
                   "OPENBLAS_", "CUDA_", "LD_", "PYTHON", "GX_", "GE_", "OPENCV_", "VLLM_")


def socket_path(python: str | None = None, env: dict[str, str] | None = None, runtime_dir: str | None = None) -> Path:
    """One launcher per interpreter (a stage family's environment), code version and import-time
    settings."""
    from . import __version__

    exe = os.path.realpath(python or sys.executable)
    env = dict(os.environ) if env is None else env
    settings = sorted((k, v) for k, v in env.items() if k.startswith(IMPORT_TIME_ENV))
    stamp = json.dumps([exe, __version__, _code_stamp(), settings])
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    base = Path(runtime_dir or env.get("GLAVE_LAUNCHER_DIR") or f"/tmp/glave-launcher-{os.getuid()}")
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base / f"{digest}.sock"


def _code_stamp() -> str:
    # A launcher that imported older code must not serve newer commands (an edited checkout).
    root = Path(__file__).resolve().parent
    return str(max((p.stat().st_mtime_ns for p in root.rglob("*.py")), default=0))


def never_preloaded(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in NEVER_PRELOAD)


def preload_modules() -> tuple[str, ...]:
    """What a launcher imports: :data:`BASE_PRELOAD`, then every registered stage's and every
    registered backend's ``warm_imports``, each once, less :data:`NEVER_PRELOAD`.

    Registered, not configured: one launcher serves an environment (an interpreter) whatever
    config its commands name, and a library declared but not installed is skipped. Each entry is
    optional: an environment may lack some (the LLM image has no Great Expectations)."""
    from .backends import warm_imports
    from .stages import stage_classes

    declared = [*BASE_PRELOAD, *(m for cls in stage_classes().values() for m in cls.warm_imports), *warm_imports()]
    return tuple(m for m in dict.fromkeys(declared) if not never_preloaded(m))


# -- server --------------------------------------------------------------------------------------
def serve(path: Path, idle_s: float = 300.0, preload: Sequence[str] | None = None) -> None:
    """Import ``preload`` (:func:`preload_modules`), then fork a child per request until idle for
    ``idle_s`` seconds, or until the code it imported changed on disk (callers then start a
    launcher of their own)."""
    stamp = _code_stamp()
    if preload is None:
        try:
            preload = preload_modules()
        except Exception:  # noqa: BLE001 - a broken declaration slows commands down, it must not stop them
            log.exception("launcher: stage and backend warm imports unavailable; preloading the base only")
            preload = BASE_PRELOAD
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional library only costs its import later
            log.info("launcher: not preloaded %s: %s", name, exc)
    if threading.active_count() > 1:  # forked commands get none of these threads, only their locks
        log.warning("launcher: preloading started threads %s; keep such modules out (NEVER_PRELOAD)",
                    [t.name for t in threading.enumerate() if t is not threading.main_thread()])
    if path.exists():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(64)
    server.settimeout(1.0)
    Path(f"{path}.pid").write_text(str(os.getpid()))
    with contextlib.suppress(FileNotFoundError):
        Path(f"{path}.starting").unlink()  # listening now: callers connect instead of waiting
    running: set[int] = set()
    lock = threading.Lock()
    last_active = time.monotonic()
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                with lock:
                    busy = bool(running)
                if busy:
                    last_active = time.monotonic()
                elif time.monotonic() - last_active > idle_s or _code_stamp() != stamp:
                    return
                continue
            last_active = time.monotonic()
            try:
                pid = _start(conn, server)
            except Exception:  # noqa: BLE001 - a bad request fails that request, not the launcher
                log.exception("launcher: request failed")
                conn.close()
                continue
            with lock:
                running.add(pid)
            threading.Thread(target=_report_exit, args=(conn, pid, running, lock), daemon=True).start()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _start(conn: socket.socket, server: socket.socket) -> int:
    size = _HEADER.unpack(_recv_exact(conn, _HEADER.size))[0]
    msg, fds, _, _ = socket.recv_fds(conn, size, 1)
    while len(msg) < size:
        msg += _recv_exact(conn, size - len(msg))
    request = json.loads(msg)
    if len(fds) != 1:
        raise ValueError("a launch request carries exactly one output descriptor")
    out_fd = fds[0]
    pid = os.fork()
    if pid == 0:  # the command
        try:
            server.close()
            conn.close()
            _become(request, out_fd)
        finally:
            os._exit(70)  # _become never returns; this is only reached if it raised
    os.close(out_fd)
    conn.sendall(_STATUS.pack(pid))
    return pid


def _become(request: dict[str, Any], out_fd: int) -> None:
    os.setsid()  # its own process group: the caller signals the whole command tree
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    argv = list(request["argv"])
    sys.argv = argv
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    logging.root.handlers.clear()  # the launcher's handlers point at its own log
    code = 0
    try:
        from .cli import main

        code = main(argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report like an interpreter would, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    os._exit(code)


def _report_exit(conn: socket.socket, pid: int, running: set[int], lock: threading.Lock) -> None:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with lock:
        running.discard(pid)
    with contextlib.suppress(OSError):
        conn.sendall(_STATUS.pack(code))
    conn.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("launcher connection closed")
        data += chunk
    return data


# -- client --------------------------------------------------------------------------------------
class LauncherUnavailable(RuntimeError):
    """No launcher could be reached or started: run the command as a plain subprocess."""


@dataclass
class LaunchedCommand:
    """A command started by the launcher: like a ``Popen`` with ``pid``, ``stdout``, ``wait``."""

    pid: int
    stdout: IO[str]
    _conn: socket.socket

    def wait(self) -> int:
        """The exit code (negative: the signal that killed it). A launcher that died while the
        command ran leaves no status: the command is waited for by its output and reported as
        failed (-1)."""
        try:
            return int(_STATUS.unpack(_recv_exact(self._conn, _STATUS.size))[0])
        except (ConnectionError, OSError):
            return -1
        finally:
            self._conn.close()
            self.stdout.close()

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return -1
        return None


def launcher_pid(python: str | None = None, env: dict[str, str] | None = None) -> int | None:
    """The pid of the launcher serving this environment, if one has started."""
    try:
        return int(Path(f"{socket_path(python, env)}.pid").read_text())
    except (OSError, ValueError):
        return None


def launch(argv: Sequence[str], *, env: dict[str, str], cwd: str | None = None, python: str | None = None,
           wait_s: float = 0.0) -> LaunchedCommand:
    """Run ``argv`` (``["glave", ...]``) through the launcher of ``python``'s environment.

    When none is listening, one is started in the background and this raises
    :class:`LauncherUnavailable` (after waiting up to ``wait_s`` for it): the caller runs this
    command in a fresh interpreter, and later commands find the launcher warm.
    """
    try:
        return _launch_once(argv, env, cwd, python, wait_s)
    except _HandshakeFailed:
        # A launcher that was dying when we connected (its socket outlives its main thread for a
        # moment): try once more, which finds the socket refused and starts a new one.
        time.sleep(0.5)
        try:
            return _launch_once(argv, env, cwd, python, wait_s)
        except _HandshakeFailed as exc:
            raise LauncherUnavailable(str(exc)) from exc


class _HandshakeFailed(LauncherUnavailable):
    pass


def _launch_once(argv: Sequence[str], env: dict[str, str], cwd: str | None, python: str | None,
                 wait_s: float) -> LaunchedCommand:
    path = socket_path(python, env)
    conn = _connect(path)
    if conn is None:
        with _start_lock(path):
            conn = _connect(path)
            if conn is None and not _starting(path):
                _spawn_server(path, python, env)
        deadline = time.monotonic() + wait_s
        while conn is None and time.monotonic() < deadline:
            time.sleep(0.2)
            conn = _connect(path)
        if conn is None:
            raise LauncherUnavailable(f"the launcher at {path} is still starting")
    read_fd, write_fd = os.pipe()
    try:
        body = json.dumps({"argv": list(argv), "env": env, "cwd": cwd or os.getcwd()}).encode()
        conn.sendall(_HEADER.pack(len(body)))
        socket.send_fds(conn, [body], [write_fd])
        pid = int(_STATUS.unpack(_recv_exact(conn, _STATUS.size))[0])
    except (OSError, ConnectionError) as exc:
        os.close(read_fd)
        conn.close()
        raise _HandshakeFailed(f"launcher at {path} did not start the command: {exc}") from exc
    finally:
        os.close(write_fd)
    return LaunchedCommand(pid, os.fdopen(read_fd, "r", errors="replace"), conn)


def _starting(path: Path) -> bool:
    """A launcher process for ``path`` is alive but not listening yet (importing)."""
    try:
        pid = int(Path(f"{path}.starting").read_text())
    except (OSError, ValueError):
        return False
    from .host import pid_alive

    return pid_alive(pid)


def _connect(path: Path) -> socket.socket | None:
    if not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


@contextlib.contextmanager
def _start_lock(path: Path) -> Iterator[None]:
    with open(f"{path}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _spawn_server(path: Path, python: str | None, env: dict[str, str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket of a launcher that is gone
    logfile = open(f"{path}.log", "ab")  # noqa: SIM115 - handed to the detached server
    proc = subprocess.Popen([python or sys.executable, "-m", "glave_tasks.launcher", str(path)], env=env,
                            stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile, start_new_session=True,
                            close_fds=True)
    logfile.close()
    Path(f"{path}.starting").write_text(str(proc.pid))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    idle = float(os.environ.get("GLAVE_LAUNCHER_IDLE_S", "300"))
    serve(Path(args[0]), idle_s=idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
