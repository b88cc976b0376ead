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


def publish(store: ArtifactStore, config: GlaveConfig, run_id: str, out_uri: str | None = None) -> dict[str, Any]:
    blocking = blocking_checks(store, run_id)
    if blocking:
        names = ", ".join(sorted({f"{c['check']} ({c['table']})" for c in blocking}))
        raise PublishBlocked(f"run {run_id!r} not published: critical checks failed: {names}")
    target = out_uri or store.uri(join_key("published", safe_segment(run_id)))
    card = export_run(store, config, run_id, target)
    exported = [k.rsplit("/", 1)[-1][:-5] for k in _json_keys(store, config, target)]
    marked = mark_annotated(store, config, run_id, exported)
    return {"run_id": run_id, "published_to": target, "videos": card["counts"]["videos"], "marked_annotated": marked,
            "counts": card["counts"]}


def _json_keys(store: ArtifactStore, config: GlaveConfig, target: str) -> list[str]:
    from .store import open_store

    return list(open_store(target, config.store.s3, config.store.local_cache).iter_keys("json", ".json"))
