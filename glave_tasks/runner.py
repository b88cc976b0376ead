"""The runner: one stage over one shard, with the contract's guarantees.

It makes a stage idempotent (commit marker with a fingerprint of everything that shapes the
output), isolates per-video failures (errors table, failure ratio) and keeps readers honest
(the marker is removed before a shard is rewritten and written last).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import __version__, schemas
from .contract import ShardContext, Stage, VideoRef
from .errors import InfrastructureError, ShardFailed, UpstreamNotReady
from .layout import RunLayout
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

    upstream: dict[str, dict[str, Any]] = {}
    for name in stage.needs:
        marker = run.commit(name, shard)
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

    # The marker goes first so that no reader trusts a shard while it is being overwritten.
    if store.exists(layout.commit(stage.name, shard)):
        store.delete_prefix(layout.commit(stage.name, shard))
    store.delete_prefix(layout.shard_prefix(stage.name, shard))

    ctx = ShardContext(store, stage.config, run_id, shard, stage.name, videos, upstream, show_progress=show_progress)
    started = time.time()
    try:
        stage.setup()
        stage.process(ctx)
    except Exception as exc:
        infra = isinstance(exc, InfrastructureError)
        try:
            store.write_json(layout.failed(stage.name, shard), {
                "stage": stage.name, "run_id": run_id, "shard": shard,
                "reason": "infrastructure" if infra else "crashed",
                "detail": f"{type(exc).__name__}: {exc}", "finished_at": datetime.now(UTC).isoformat(),
            })
        except InfrastructureError:
            pass  # the store is what failed; the one-line error below says so
        raise
    ensure_all_held(leases)
    store.write_table(layout.table(stage.name, shard, "errors"), schemas.rows_to_table(ctx.errors, schemas.ERRORS))

    failed = len(ctx.failed_ids)
    marker = {
        "stage": stage.name, "run_id": run_id, "shard": shard, "fingerprint": fp,
        "code_version": __version__, "pipeline_version": stage.config.run.pipeline_version,
        "models": stage.model_ids(), "prompts": stage.prompt_versions(),
        "videos_in": len(videos), "videos_ok": [v.video_id for v in ctx.ok_videos()], "videos_failed": failed,
        "failures": _count_reasons(ctx.errors), "counts": ctx.counts, "metrics": ctx.metrics,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished_at": datetime.now(UTC).isoformat(), "duration_s": round(time.time() - started, 3),
    }
    ratio = failed / len(videos) if videos else 0.0
    if ratio > stage.config.run.max_failure_ratio:
        store.write_json(layout.failed(stage.name, shard), {**marker, "reason": "failure_ratio", "ratio": ratio})
        raise ShardFailed(
            f"{stage.name} shard {shard}: {failed}/{len(videos)} videos failed "
            f"(ratio {ratio:.2f} > max_failure_ratio {stage.config.run.max_failure_ratio}); "
            f"reasons: {marker['failures']}"
        )
    ensure_all_held(leases)
    store.write_json(layout.commit(stage.name, shard), marker)
    return StageOutcome(stage.name, shard, "committed", marker)


def _count_reasons(errors: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in errors:
        out[e["reason"]] = out.get(e["reason"], 0) + 1
    return out
