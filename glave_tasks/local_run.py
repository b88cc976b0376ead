"""Run the whole pipeline on one machine without Airflow: discover, each stage per shard, then
the report and the gated publish step.

A failed shard is reported and the other shards go on; later stages skip that shard because its
upstream is not committed. The run shares one worker pool: a stage whose per-video work runs in it
processes its shards side by side, so many small shards cost what one large shard does.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import signals
from .config import GlaveConfig
from .contract import Stage
from .discover import discover
from .errors import GlaveError, InfrastructureError, Terminated
from .parallel import run_pool, runs_shards_side_by_side, terminate_run_pool
from .runner import StageOutcome, run_stage
from .stages import available, build_stage, stage_class
from .store import ArtifactStore

log = logging.getLogger(__name__)


def run_pipeline(
    store: ArtifactStore,
    config: GlaveConfig,
    input_uri: str,
    run_id: str,
    *,
    stages: list[str] | None = None,
    reprocess: bool = False,
    force: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    manifest = discover(store, config, input_uri, run_id, reprocess=reprocess)
    names = stages or available()
    outcomes: list[StageOutcome] = []
    failed: list[dict[str, Any]] = []
    aborted: str | None = None
    server = _ModelServer(store, config, run_id, names if manifest["shards"] else [])
    try:
        server.start_early()
        with run_pool() as pool:
            for i, name in enumerate(names):
                stage = build_stage(name, server.config_for(name))
                if not runs_shards_side_by_side(stage):
                    # This stage works in this process and leaves the pool's workers idle: they
                    # import what later pooled stages need meanwhile.
                    pool.warm(m for later in names[i + 1:] for m in stage_class(later).warm_imports)
                done, errors, aborted = _run_shards(stage, store, run_id, manifest["shards"], force, show_progress)
                outcomes += done
                failed += errors
                server.after(name)
                if aborted:
                    break
    finally:
        server.stop()  # even when a stage raised
    result: dict[str, Any] = {
        "run_id": run_id, "store": store.root, "num_videos": manifest["num_videos"], "shards": manifest["shards"],
        "outcomes": [o.to_json() for o in outcomes], "failed": failed, "report": None, "published": None,
    }
    if server.record is not None:
        result["model_server"] = {k: server.record.get(k) for k in ("url", "model", "engine_starts", "startup_s",
                                                                     "restarts", "stopped_at")}
    if aborted:
        result["aborted"] = aborted
        return result
    if manifest["num_videos"] == 0:
        result["publish_skipped"] = "no new videos under the input prefix"
        return result
    # Report and publish only after a full pipeline: publish is gated on validation's critical
    # checks and is what marks videos annotated, so a blocked run is picked up again next night.
    if names == available() and "validate" in names:
        from .publish import publish
        from .report.build import build_report

        result["report"] = build_report(store, config, run_id)
        try:
            result["published"] = publish(store, config, run_id)
        except GlaveError as exc:
            result["publish_blocked"] = str(exc)
    return result


def _run_shards(stage: Stage, store: ArtifactStore, run_id: str, shards: list[int], force: bool,
                show_progress: bool) -> tuple[list[StageOutcome], list[dict[str, Any]], str | None]:
    """One stage over the run's shards: side by side when its videos go to the run's pool, else
    one after another. Outcomes and failures in shard order; an infrastructure error stops the
    shards not yet started (every later step would fail the same way after its own retries; a
    re-run resumes from the commits)."""
    outcomes: list[StageOutcome] = []
    failed: list[dict[str, Any]] = []
    aborted: list[str] = []

    def one(shard: int) -> StageOutcome | None:
        signals.check()  # the run is stopping: no shard starts
        if aborted:
            return None
        try:
            return run_stage(stage, store, run_id, shard, force=force, show_progress=show_progress)
        except InfrastructureError as exc:
            aborted.append(str(exc))
            failed.append({"stage": stage.name, "shard": shard, "error": str(exc)})
        except GlaveError as exc:
            failed.append({"stage": stage.name, "shard": shard, "error": str(exc)})
        return None

    if runs_shards_side_by_side(stage) and len(shards) > 1:
        with ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix=f"glave-{stage.name}") as threads:
            try:
                results = list(threads.map(one, shards))
            except (Terminated, KeyboardInterrupt):
                # A signal reaches this thread only. The shard threads wait on the run's pool: its
                # workers are killed, so each thread ends its shard as terminated (failure marker,
                # leases released) while leaving the block waits for them to finish that.
                signals.stop("interrupted", 130)  # Ctrl-C; after a signal, the signal's reason stays
                terminate_run_pool()
                raise
    else:
        results = [one(shard) for shard in shards]
    outcomes = [r for r in results if r is not None]
    failed.sort(key=lambda f: f["shard"])
    return outcomes, failed, aborted[0] if aborted else None


class _ModelServer:
    """The run's model server around its engine stages: starting in the background from the
    beginning of the run (its start-up overlaps the stages before the first engine stage, as the
    DAG's setup task overlaps ingest), waited for by the first stage that needs it, stopped after
    the last one (or when the run fails, cancelling a start still under way). Other engines: nothing.

    While the engine stages run, a watchdog restarts the server once when its process is gone
    (what is left of it stopped first, the new one on the same port): clients wait for it within
    ``engine.server_wait_s`` and carry on. A second death is final: the clients are told at once
    and the stage ends as infrastructure (exit 3)."""

    RESTARTS = 1  # a server that dies twice in a run has a cause a third start will not fix
    WATCH_S = 1.0

    def __init__(self, store: ArtifactStore, config: GlaveConfig, run_id: str, names: list[str]) -> None:
        from .language.engine_stage import EngineStage
        from .language.model_server import server_needed
        from .stages import stage_class

        self.store, self.config, self.run_id = store, config, run_id
        self.users = [n for n in names if issubclass(stage_class(n), EngineStage)] if server_needed(config) else []
        self.record: dict[str, Any] | None = None
        self.restarts = 0
        self._starting: Future[dict[str, Any]] | None = None
        self._cancel = threading.Event()  # the run is done with the server: no start, no restart
        self._watchdog: threading.Thread | None = None

    def start_early(self) -> None:
        if self.users and self._starting is None and self.record is None:
            from .language.model_server import start_local

            starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="glave-model-server")
            # Owned by this process: a run killed with SIGKILL leaves no server behind.
            self._starting = starter.submit(start_local, self.config, self.store, self.run_id, self._cancel,
                                            os.getpid())
            starter.shutdown(wait=False)

    def config_for(self, name: str) -> GlaveConfig:
        if name not in self.users:
            return self.config
        from .language.model_server import attach

        if self.record is None:
            self.start_early()  # a no-op when the run began it, as it does
            assert self._starting is not None  # name is one of self.users
            self.record = self._starting.result()
            self._watchdog = threading.Thread(target=self._watch, name="glave-model-server-watch", daemon=True)
            self._watchdog.start()
        return attach(self.config, self.store, self.run_id)

    def _watch(self) -> None:
        """Restart the server when its process (the guard leading its session) is gone."""
        from .host import pid_alive
        from .language.model_server import abandon, restart_local

        while not self._cancel.wait(self.WATCH_S):
            record = self.record
            if record is None or pid_alive(record.get("pid")):
                continue
            url = str(record.get("url"))
            if self.restarts >= self.RESTARTS:
                log.error("model server of run %s died again (pid %s); not restarted: %d restart(s) a run",
                          self.run_id, record.get("pid"), self.RESTARTS)
                abandon(url, f"it died after {self.restarts} restart(s) in run {self.run_id}")
                return
            self.restarts += 1
            log.warning("model server of run %s died (pid %s); restarting it at %s", self.run_id, record.get("pid"), url)
            try:
                self.record = restart_local(self.config, self.store, self.run_id, self._cancel, os.getpid())
            except Exception as exc:  # noqa: BLE001 - the clients learn it from the abandoned URL
                if not self._cancel.is_set():
                    log.error("model server of run %s could not be restarted: %s", self.run_id, exc)
                    abandon(url, f"its restart failed: {exc}")
                return

    def after(self, name: str) -> None:
        if self.users and name == self.users[-1]:
            self.stop()

    def stop(self) -> None:
        self._cancel.set()  # before anything else: a death while stopping is not restarted
        if self._watchdog is not None:
            self._watchdog.join()  # a restart under way sees the cancel and stops its process
            self._watchdog = None
        if self._starting is not None and self.record is None:
            # The run ends before any engine stage asked for the server: stop its start.
            try:
                self.record = self._starting.result()  # it became ready meanwhile: stopped below
            except Exception as exc:  # noqa: BLE001 - no stage needed it; the run's own outcome stands
                log.info("model server of run %s not started: %s", self.run_id, exc)
                return  # cancelled or failed: start_local stopped the process itself
        if self.record is not None and not self.record.get("stopped_at"):
            from .language.model_server import stop_local

            # Stops what the store's record names (after a failed restart, the old server's remains).
            self.record = stop_local(self.store, self.run_id) or self.record
