"""Publish a run: refuse when a critical check failed, else export and mark videos annotated."""

from __future__ import annotations

from typing import Any

from .config import GlaveConfig
from .discover import mark_annotated
from .errors import GlaveError
from .export import export_run
from .keys import join_key, safe_segment
from .run import Run
from .store import ArtifactStore


class PublishBlocked(GlaveError):
    """A critical quality check failed (or validation did not run): the run is not published."""


def blocking_checks(store: ArtifactStore, run_id: str) -> list[dict[str, Any]]:
    """Critical failed checks of every shard; a shard without committed validation blocks too."""
    run = Run(store, run_id)
    missing = [s for s in run.shards if run.commit("validate", s) is None and run.commit("qa", s) is not None]
    blocking = [{"check": "validate.committed", "table": "-", "detail": f"shard {s} has QA but no committed validation"}
                for s in missing]
    checks = run.table("checks").to_pylist()
    blocking += [c for c in checks if c["critical"] and c["status"] == "fail"]
    return blocking


def incomplete_shards(store: ArtifactStore, run_id: str) -> list[str]:
    """Every stage x shard of the run that is not committed: ``track[3] failed (crashed)``, ``qa[0] missing``."""
    from .stages import available

    run = Run(store, run_id)
    out = []
    for stage in available():
        for shard in run.shards:
            if run.commit(stage, shard) is None:
                failure = run.failure(stage, shard)
                out.append(f"{stage}[{shard}] " + (f"failed ({failure.get('reason')})" if failure else "missing"))
    return out


def publish(store: ArtifactStore, config: GlaveConfig, run_id: str, out_uri: str | None = None, *,
            allow_partial: bool = False) -> dict[str, Any]:
    """Export the run and mark its videos annotated, or refuse and say why (``PublishBlocked``):
    a stage shard failed or never ran (unless ``allow_partial``), a critical check failed, or no
    video completed the pipeline (an empty dataset is never published as a good night)."""
    run = Run(store, run_id)
    incomplete = incomplete_shards(store, run_id)
    if incomplete and not allow_partial:
        shown = ", ".join(incomplete[:12]) + (f" and {len(incomplete) - 12} more" if len(incomplete) > 12 else "")
        raise PublishBlocked(f"run {run_id!r} not published: {len(incomplete)} stage shard(s) not committed: {shown}; "
                             "re-run them, or publish what completed with --allow-partial")
    blocking = blocking_checks(store, run_id)
    if blocking:
        names = ", ".join(sorted({f"{c['check']} ({c['table']})" for c in blocking}))
        raise PublishBlocked(f"run {run_id!r} not published: critical checks failed: {names}")
    rules_made = rules_engine_tables(store, run_id)
    if rules_made and config.run.dataset_purpose != "test":
        raise PublishBlocked(f"run {run_id!r} not published: its {', '.join(rules_made)} were written by the rules "
                             "engine (no model saw the videos); a production dataset needs a model engine, or set "
                             "run.dataset_purpose: test to publish it as a test dataset")
    complete = run.videos_ok("validate")
    if not complete:
        raise PublishBlocked(f"run {run_id!r} not published: no video completed the pipeline "
                             f"({run.num_videos} in the run); there is nothing to publish")
    target = out_uri or store.uri(join_key("published", safe_segment(run_id)))
    card = export_run(store, config, run_id, target)
    exported = [k.rsplit("/", 1)[-1][:-5] for k in _json_keys(store, config, target)]
    marked = mark_annotated(store, config, run_id, exported)
    return {"run_id": run_id, "published_to": target, "videos": card["counts"]["videos"], "marked_annotated": marked,
            "counts": card["counts"], "partial": bool(incomplete), "incomplete_shards": incomplete}


def rules_engine_tables(store: ArtifactStore, run_id: str) -> list[str]:
    """The run's generated tables with rows the rules engine wrote."""
    tables = Run(store, run_id).tables(["overviews", "local_captions", "scenes", "video_captions", "qa"])
    return [name for name, t in tables.items() if name != "videos" and t.num_rows
            and "rules" in set(t["generator"].to_pylist())]


def _json_keys(store: ArtifactStore, config: GlaveConfig, target: str) -> list[str]:
    from .store import open_store

    return list(open_store(target, config.store.s3, config.store.local_cache).iter_keys("json", ".json"))
