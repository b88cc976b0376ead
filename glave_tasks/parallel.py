"""Per-video work of a CPU stage spread over a process pool, results in the shard's order.

A stage whose per-video work is independent (ingest, the classical tracker) calls

    results = map_videos(ctx, self, "_video", [(video, args...), ...])

and gets one result per item, in item order, whatever order the workers finish in; a video that
failed gets ``None`` and its failure is recorded on ``ctx`` exactly as ``ctx.guard`` would. Each
worker process builds the stage once (``setup``: models, descriptors) and works on a
:class:`VideoContext`, the part of :class:`ShardContext` that makes sense for one video: blobs
written to the store, upstream files, failures and metrics (summed by the parent).

The pool has as many processes as the stage may use CPUs: the pod's CPU request
(``GLAVE_CPUS``, set on every pod from the stage's declared resources) or, on one machine, the
stage's declared ``cpu``, never more than the cores this process may run on. One worker (or one
video) runs inline, in this process, with no pool at all. GPU stages are not parallelised here.

On one machine a whole run shares one pool (:func:`run_pool`): the shards of a stage then run side
by side (:func:`runs_shards_side_by_side`), each sending its videos (or, with :func:`run_in_pool`,
its whole shard-level work) to that pool, so a run of many small shards keeps every core busy and
starts its workers once.

When the process is told to stop (:mod:`glave_tasks.signals`), a pool's workers are killed at
once rather than left to finish their videos: what they wrote belongs to no commit, and nothing
may go on writing after the stage has given up its leases. The threads waiting on them get
:class:`~glave_tasks.errors.Terminated`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import signals
from .config import GlaveConfig
from .contract import Resources, ShardContext, Stage, quantity
from .errors import Terminated

CPUS_ENV = "GLAVE_CPUS"


def cpu_workers(resources: Resources) -> int:
    """Processes for per-video work: the pod's CPU request, else the stage's declared CPUs,
    capped by the cores available to this process (and 1 for GPU stages)."""
    if resources.gpus > 0:
        return 1
    requested = os.environ.get(CPUS_ENV) or resources.cpu
    try:
        n = math.floor(quantity(requested))
    except ValueError:
        n = 1
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(n, available))


@dataclass
class VideoContext:
    """What a worker sees of the shard while it works on one video (picklable)."""

    store: Any  # the parent's ArtifactStore (pickled: root, S3 options, cache folder)
    config: GlaveConfig
    run_id: str
    shard: int
    stage: str
    video_id: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    show_progress: bool = False
    # The parent's environment when the work was handed out (credentials, endpoints): a
    # forkserver's workers would otherwise see the environment of the day the server started.
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # The attempt the parent writes (the worker's writes go there too), the upstream commits'
    # records of this video's files (to check what it reads), and what the worker wrote.
    attempt: str | None = None
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _ctx(self) -> ShardContext:
        return ShardContext(self.store, self.config, self.run_id, self.shard, self.stage, [], self.upstream,
                            errors=self.errors, metrics=self.metrics, show_progress=False, attempt=self.attempt,
                            artifacts=self.artifacts)

    def put_bytes(self, data: bytes, *parts: str) -> str:
        return self._ctx().put_bytes(data, *parts)

    def upstream_file(self, key: str) -> str:
        return self._ctx().upstream_file(key)

    def add_metric(self, name: str, value: float) -> None:
        self.metrics[name] = self.metrics.get(name, 0.0) + value

    def fail(self, video_id: str, reason: str, detail: str = "") -> None:
        self._ctx().fail(video_id, reason, detail)


_STAGES: dict[tuple[str, str], Stage] = {}  # per worker process: stages built (and set up) once


def _worker_stage(cls: type[Stage], config: GlaveConfig) -> Stage:
    key = (f"{cls.__module__}.{cls.__qualname__}", config.model_dump_json())
    stage = _STAGES.get(key)
    if stage is None:
        stage = _STAGES[key] = cls(config)
        stage.setup()
    return stage


def _adopt_environ(environ: dict[str, str]) -> None:
    """The submitting process's environment (credentials, endpoints) for this piece of work."""
    if environ != os.environ:
        os.environ.clear()
        os.environ.update(environ)


def _run_one(cls: type[Stage], config: GlaveConfig, method: str, vctx: VideoContext, args: tuple[Any, ...]) -> Any:
    _adopt_environ(vctx.environ)
    stage = _worker_stage(cls, config)
    ctx = vctx._ctx()
    result = None
    with ctx.guard(vctx.video_id):
        result = getattr(stage, method)(vctx, *args)
    return result, vctx.errors, vctx.metrics, vctx.artifacts


def _exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: the worker exits when the stage process is gone. Workers are children of
    the forkserver, so a stage process killed with SIGKILL would otherwise leave them blocked on
    their call queue for good."""
    import threading
    import time

    from .host import pid_alive

    signals.default_in_child()  # the parent stops a worker with a signal: it must simply die

    def watch() -> None:
        while pid_alive(parent_pid):
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="glave-parent-watch", daemon=True).start()


def video_pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of per-video work (forkserver workers that end with this process)."""
    import multiprocessing

    # forkserver: workers do not inherit this process's threads (OpenCV, BLAS, a progress bar).
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


def terminate_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: its workers are killed (mid-video) and work not yet started is cancelled;
    whoever waits on one of its futures gets an error (:func:`wait_for` makes it ``Terminated``)."""
    # The pool forgets its processes on shutdown: take them first. Killed before the shutdown, so
    # that no worker takes up another video meanwhile.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(Exception):  # already gone
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _abandoning(exc: BaseException | None) -> bool:
    """Whether a pool is left because the process is stopping (kill its workers) rather than on
    an error of the work (running work ends first, as always)."""
    return isinstance(exc, Terminated | KeyboardInterrupt) or signals.stopping.is_set()


def _terminate_if_abandoned(pool: ProcessPoolExecutor) -> Callable[..., bool]:
    """An exit callback (``ExitStack.push``) that kills the pool's workers when the block is left
    because the process is stopping; leaving the pool would otherwise wait for their videos."""

    def on_exit(exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is not None and _abandoning(exc):
            terminate_pool(pool)
        return False

    return on_exit


def wait_for(future: Future[Any]) -> Any:
    """``future.result()``; when the process is stopping, an error of a pool stopped for that
    reason (a killed worker, a cancelled future) is raised as :class:`Terminated` instead."""
    try:
        return future.result()
    except BaseException:
        signals.check()
        raise


class RunPool:
    """The process pool a run shares across its shards and stages (see :func:`run_pool`)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._warmed: set[str] = set()

    def get(self) -> ProcessPoolExecutor:
        """The live pool; a pool broken by a dead worker is replaced (its shard already failed).
        Once the process is stopping there is none: ``Terminated``."""
        with self._lock:
            signals.check()
            if self._pool is None or getattr(self._pool, "_broken", False):
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = video_pool(self.workers)
            return self._pool

    def warm(self, modules: Iterable[str]) -> None:
        """Import ``modules`` in the workers without waiting (while the run's own process works)."""
        todo = [m for m in modules if m not in self._warmed]
        if not todo:
            return
        self._warmed.update(todo)
        pool = self.get()
        for _ in range(self.workers):
            pool.submit(_import_all, tuple(todo))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def terminate(self) -> None:
        """Kill the workers now (:func:`terminate_pool`): the shards waiting on them stop."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            terminate_pool(pool)


_RUN_POOL: RunPool | None = None


@contextlib.contextmanager
def run_pool(workers: int | None = None) -> Iterator[RunPool]:
    """One worker pool for everything this process runs inside the block (``glave run``)."""
    global _RUN_POOL
    if workers is None:
        workers = cpu_workers(Resources(cpu=str(os.cpu_count() or 1)))
    previous, _RUN_POOL = _RUN_POOL, RunPool(workers)
    try:
        yield _RUN_POOL
    except BaseException as exc:
        if _abandoning(exc):
            _RUN_POOL.terminate()
        raise
    finally:
        _RUN_POOL.close()
        _RUN_POOL = previous


def terminate_run_pool() -> None:
    """Kill the workers of the run's pool, if there is one (the process is stopping)."""
    if _RUN_POOL is not None:
        _RUN_POOL.terminate()


def runs_shards_side_by_side(stage: Stage) -> bool:
    """Whether a run may process this stage's shards at once: its heavy work goes to the run's
    pool (what runs around it is light), a pool with more than one worker is there to take it,
    and the stage needs no GPU."""
    return _RUN_POOL is not None and _RUN_POOL.workers > 1 and stage.work_in_pool and stage.resources().gpus == 0


def run_in_pool(stage: Stage, method: str, *args: Any) -> Any:
    """``stage.<method>(*args)`` (shard-level work) in a worker of the run's pool when there is
    one, so that shards run side by side; in this process otherwise (a pod: one shard). The
    arguments and the result cross processes: keep them to tables and plain data."""
    if _RUN_POOL is None or _RUN_POOL.workers <= 1:
        return getattr(stage, method)(*args)
    return wait_for(_RUN_POOL.get().submit(_call, type(stage), stage.config, method, args, dict(os.environ)))


def _call(cls: type[Stage], config: GlaveConfig, method: str, args: tuple[Any, ...], environ: dict[str, str]) -> Any:
    _adopt_environ(environ)
    return getattr(_worker_stage(cls, config), method)(*args)


def _import_all(modules: tuple[str, ...]) -> None:
    import importlib
    import time

    started = time.monotonic()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S110 - only a head start: the stage imports it (and reports) itself
            pass
    # Stay busy a moment: each idle worker then takes one of these tasks, not one worker all.
    time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))


def map_videos(ctx: ShardContext, stage: Stage, method: str, items: list[tuple[str, tuple[Any, ...]]],
               workers: int | None = None) -> list[Any]:
    """``stage.<method>(video_ctx, *args)`` for each ``(video_id, args)``, in item order."""
    signals.check()  # a shard thread of a run that is stopping starts no more work
    workers = cpu_workers(stage.resources()) if workers is None else workers
    shared = _RUN_POOL if _RUN_POOL is not None and _RUN_POOL.workers > 1 and workers > 1 else None
    if shared is None:
        workers = min(workers, len(items))
    results: list[Any] = []
    if shared is None and workers <= 1:
        for vid, args in ctx.progress(items, "videos", total=len(items)):
            signals.check()  # a shard thread gets no signal: it stops between videos
            result = None
            with ctx.guard(vid):
                result = getattr(stage, method)(ctx, *args)
            results.append(result)
        return results
    with contextlib.ExitStack() as stack:
        # A run's pool is shared (other shards may be using it now); otherwise this call's own.
        pool = shared.get() if shared is not None else stack.enter_context(video_pool(workers))
        if shared is None:  # a run's pool is the run's to stop (local_run)
            stack.push(_terminate_if_abandoned(pool))
        futures = [pool.submit(_run_one, type(stage), stage.config, method,
                               VideoContext(ctx.store, stage.config, ctx.run_id, ctx.shard, ctx.stage, vid,
                                            attempt=ctx.attempt, upstream=_upstream_of(ctx, vid)), args)
                   for vid, args in items]
        for future in ctx.progress(futures, "videos", total=len(futures)):
            result, errors, metrics, artifacts = wait_for(future)  # a dead worker: BrokenProcessPool fails the shard
            ctx._check_fence()
            ctx.artifacts.update(artifacts)
            for e in errors:
                ctx.fail(e["video_id"], e["reason"], e["detail"])
            for name, value in metrics.items():
                ctx.add_metric(name, value)
            results.append(result)
    return results


def _upstream_of(ctx: ShardContext, video_id: str) -> dict[str, dict[str, Any]]:
    """The upstream commits as a worker needs them for one video: the attempt and the records of
    that video's files only (files live under ``files/<video_id>/``), not the whole shard's."""
    from .keys import safe_segment

    head = f"files/{safe_segment(video_id)}/"
    out: dict[str, dict[str, Any]] = {}
    for stage, marker in ctx.upstream.items():
        slim: dict[str, Any] = {"attempt": marker.get("attempt")}
        if isinstance(marker.get("artifacts"), dict):
            slim["artifacts"] = {k: v for k, v in marker["artifacts"].items() if k.startswith(head)}
        out[stage] = slim
    return out
