"""The runner: one stage over one shard, with the contract's guarantees.

It makes a stage idempotent (commit marker with a fingerprint of everything that shapes the
output), isolates per-video failures (errors table, failure ratio) and keeps readers honest
(the marker is removed before a shard is rewritten and written last). Every write of an attempt
is fenced by its lease (checked before each write, and read back before the commit), the marker
is created only where none is, and it records every artifact's size and checksum, which readers
check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .contract import ShardContext, Stage, VideoRef
from .errors import CorruptArtifact, InfrastructureError, LeaseLost, ShardFailed, Terminated, UpstreamNotReady
from .integrity import seal
from .keys import join_key
from .layout import ATTEMPT_PREFIX, RunLayout, shard_name
from .run import Run
from .store import ArtifactStore

log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    stage: str
    shard: int
    status: str  # committed | skipped (already committed, same fingerprint)
    marker: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        m = self.marker
        return {
            "stage": self.stage, "shard": self.shard, "status": self.status,
            "videos_in": m.get("videos_in"), "videos_ok": len(m.get("videos_ok", [])),
            "videos_failed": m.get("videos_failed"), "counts": m.get("counts"),
            "duration_s": m.get("duration_s"), "fingerprint": m.get("fingerprint"),
        }


def fingerprint(stage: Stage, videos: list[VideoRef], upstream: dict[str, dict[str, Any]]) -> str:
    payload = {
        "stage": stage.name,
        "code_version": __version__,
        "pipeline_version": stage.config.run.pipeline_version,
        "config": stage.config.section_hash(*stage.config_sections),
        "models": stage.model_ids(),
        "prompts": stage.prompt_versions(),
        "upstream": {name: m["fingerprint"] for name, m in sorted(upstream.items())},
        "videos": [v.content_hash for v in videos],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_stage(
    stage: Stage,
    store: ArtifactStore,
    run_id: str,
    shard: int,
    *,
    force: bool = False,
    show_progress: bool = True,
) -> StageOutcome:
    """Run one stage over one shard with the contract's guarantees.

    The writer holds the leases of its own output and of the upstream shards it reads, so a
    second writer of the same run (a concurrent run, a forced re-ingest) waits instead of
    rewriting what this one reads; leases are taken in pipeline order, so no two writers deadlock.
    """
    from .lease import hold
    from .stages import available

    order = available()
    parts = sorted({*stage.needs, stage.name}, key=lambda n: order.index(n) if n in order else len(order))
    cfg = stage.config.store
    with hold(store, run_id, [(n, shard) for n in parts], ttl_s=cfg.lease_ttl_s, wait_s=cfg.lease_wait_s) as leases:
        return _run_stage_held(stage, store, run_id, shard, leases, force=force, show_progress=show_progress)


def _run_stage_held(
    stage: Stage,
    store: ArtifactStore,
    run_id: str,
    shard: int,
    leases: list[Any],
    *,
    force: bool,
    show_progress: bool,
) -> StageOutcome:
    from .lease import ensure_all_held

    layout = RunLayout(run_id)
    run = Run(store, run_id)
    run.check_shard(shard)
    own = next(lease for lease in leases if lease.key.endswith(f"/{stage.name}/{shard_name(shard)}.json"))

    def fence() -> None:
        for lease in leases:
            lease.check()

    upstream: dict[str, dict[str, Any]] = {}
    for name in stage.needs:
        marker, torn = run.marker(name, shard)
        if torn is not None:
            exc = CorruptArtifact(torn, stage=name, shard=shard, key=layout.commit(name, shard))
            _mark_corrupt(store, layout, exc, by=stage.name)
            raise exc
        if marker is None:
            raise UpstreamNotReady(f"{name} shard {shard} of run {run_id!r} is not committed; run it first")
        upstream[name] = marker

    videos = run.shard_videos(shard)
    for marker in upstream.values():
        ok = set(marker["videos_ok"])
        videos = [v for v in videos if v.video_id in ok]

    fp = fingerprint(stage, videos, upstream)
    existing = run.commit(stage.name, shard)
    if existing and existing.get("fingerprint") == fp and not force:
        log.info("%s shard %d already committed with the same fingerprint; nothing to do", stage.name, shard)
        return StageOutcome(stage.name, shard, "skipped", existing)

    # Nothing is removed before this writer proves the lease is still its own. The marker goes
    # first so that no reader trusts a shard while it is being rewritten.
    ensure_all_held(leases)
    if store.exists(layout.commit(stage.name, shard)):
        store.delete_prefix(layout.commit(stage.name, shard))
    store.delete_prefix(layout.shard_prefix(stage.name, shard))

    attempt = own.attempt  # a folder of its own: only this attempt's commit makes it visible
    ctx = ShardContext(store, stage.config, run_id, shard, stage.name, videos, upstream, show_progress=show_progress,
                       attempt=attempt, fence=fence)
    started = time.time()

    def record_failure(reason: str, detail: str, **extra: Any) -> None:
        try:
            fence()  # a writer that lost its lease leaves the shard's state to the one that took it
            store.write_json(layout.failed(stage.name, shard), {
                "stage": stage.name, "run_id": run_id, "shard": shard, "attempt": attempt, "reason": reason,
                "detail": detail, "finished_at": datetime.now(UTC).isoformat(), **extra})
        except InfrastructureError:
            pass  # the store or the lease is what failed; the one-line error says so

    try:
        stage.setup()
        stage.process(ctx)
    except Terminated:
        record_failure("terminated", "stopped by SIGTERM before it committed; run it again")
        raise
    except CorruptArtifact as exc:
        if exc.stage in stage.needs:
            _mark_corrupt(store, layout, exc, by=stage.name)
        record_failure("corrupt_upstream" if exc.stage in stage.needs else "infrastructure", str(exc))
        raise
    except Exception as exc:
        infra = isinstance(exc, InfrastructureError)
        record_failure("infrastructure" if infra else "crashed", f"{type(exc).__name__}: {exc}")
        raise
    ctx.write_errors()

    failed = len(ctx.failed_ids)
    marker = {
        "stage": stage.name, "run_id": run_id, "shard": shard, "fingerprint": fp,
        "code_version": __version__, "pipeline_version": stage.config.run.pipeline_version,
        "models": stage.model_ids(), "prompts": stage.prompt_versions(),
        "videos_in": len(videos), "videos_ok": [v.video_id for v in ctx.ok_videos()], "videos_failed": failed,
        "failures": _count_reasons(ctx.errors), "counts": ctx.counts, "metrics": ctx.metrics,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished_at": datetime.now(UTC).isoformat(), "duration_s": round(time.time() - started, 3),
        "attempt": attempt, "lease_generation": own.generation, "artifacts": dict(sorted(ctx.artifacts.items())),
    }
    ratio = failed / len(videos) if videos else 0.0
    # A shard whose every video failed says nothing about its videos and much about the
    # platform or the config: it never commits, whatever the ratio allows.
    if ratio > stage.config.run.max_failure_ratio or (videos and failed == len(videos)):
        limit = stage.config.run.max_failure_ratio
        why = f"all of its videos failed; max_failure_ratio {limit}" if failed == len(videos) else \
            f"ratio {ratio:.2f} > max_failure_ratio {limit}"
        record_failure("failure_ratio", f"{failed}/{len(videos)} videos failed ({why})",
                       **{k: v for k, v in marker.items() if k not in ("artifacts", "attempt")}, ratio=ratio)
        raise ShardFailed(f"{stage.name} shard {shard}: {failed}/{len(videos)} videos failed ({why}); "
                          f"reasons: {marker['failures']}")
    ensure_all_held(leases)
    # Created only where no marker is: a writer that took the lease over and committed meanwhile
    # cannot be overwritten, even by one whose checks all passed a moment ago.
    sealed = seal(marker)
    body = json.dumps(sealed, indent=2, sort_keys=True, default=str).encode()
    if not store.create_if_absent(layout.commit(stage.name, shard), body) and \
            store.read_if_exists(layout.commit(stage.name, shard)) != body:
        # An identical marker is this attempt's own create whose answer was lost and retried.
        raise LeaseLost(f"{stage.name} shard {shard}: another writer committed it first; this attempt is dropped")
    _drop_other_attempts(store, layout, stage.name, shard, attempt)
    return StageOutcome(stage.name, shard, "committed", sealed)


def _mark_corrupt(store: ArtifactStore, layout: RunLayout, exc: CorruptArtifact, *, by: str) -> None:
    """A reader found an upstream shard's committed artifact damaged: that shard stops counting
    as committed (so a re-run recomputes it) and says why. The reader holds that shard's lease."""
    if exc.stage is None or exc.shard is None:
        return
    log.error("%s shard %d is corrupt: %s", exc.stage, exc.shard, exc)
    try:
        store.write_json(layout.corrupt(exc.stage, exc.shard), {
            "stage": exc.stage, "shard": exc.shard, "reason": "corrupt", "detail": str(exc), "key": exc.key,
            "found_by": by, "found_at": datetime.now(UTC).isoformat()})
        if store.exists(layout.commit(exc.stage, exc.shard)):
            store.delete_prefix(layout.commit(exc.stage, exc.shard))
    except InfrastructureError as err:
        log.warning("could not mark %s shard %d corrupt: %s", exc.stage, exc.shard, err)


def _drop_other_attempts(store: ArtifactStore, layout: RunLayout, stage: str, shard: int, attempt: str) -> None:
    """Remove what other attempts left in the shard (a writer that lost its lease and wrote on for
    a moment): best effort, the commit already made only this attempt visible."""
    prefix = layout.shard_prefix(stage, shard)
    try:
        for name in store.list_dirs(prefix):
            if name.startswith(ATTEMPT_PREFIX) and name != attempt:
                store.delete_prefix(join_key(prefix, name))
    except InfrastructureError as exc:
        log.warning("%s shard %d: could not remove other attempts' files: %s", stage, shard, exc)


def _count_reasons(errors: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in errors:
        out[e["reason"]] = out.get(e["reason"], 0) + 1
    return out
