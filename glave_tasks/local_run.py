"""Run the whole pipeline on one machine without Airflow: discover, each stage per shard, then
the report and the gated publish step.

A failed shard is reported and the other shards go on; later stages skip that shard because its
upstream is not committed.
"""

from __future__ import annotations

from typing import Any

from .config import GlaveConfig
from .discover import discover
from .errors import GlaveError, InfrastructureError
from .runner import StageOutcome, run_stage
from .stages import available, build_stage
from .store import ArtifactStore


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
    for name in names:
        if aborted:
            break
        stage = build_stage(name, config)
        for shard in manifest["shards"]:
            try:
                outcomes.append(run_stage(stage, store, run_id, shard, force=force, show_progress=show_progress))
            except InfrastructureError as exc:
                # The store (or a lease) failed, not a shard: every later step would fail the same
                # way after its own retries. Stop here; a re-run resumes from the commits.
                failed.append({"stage": name, "shard": shard, "error": str(exc)})
                aborted = str(exc)
                break
            except GlaveError as exc:
                failed.append({"stage": name, "shard": shard, "error": str(exc)})
    result: dict[str, Any] = {
        "run_id": run_id, "store": store.root, "num_videos": manifest["num_videos"], "shards": manifest["shards"],
        "outcomes": [o.to_json() for o in outcomes], "failed": failed, "report": None, "published": None,
    }
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
