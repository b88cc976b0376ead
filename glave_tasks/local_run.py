"""Run the whole pipeline on one machine without Airflow: discover, then each stage per shard.

A failed shard is reported and the other shards go on; later stages skip that shard because its
upstream is not committed.
"""

from __future__ import annotations

from typing import Any

from .config import GlaveConfig
from .discover import discover, mark_annotated
from .errors import GlaveError
from .stage import StageOutcome, read_commit, run_stage
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
    for name in names:
        stage = build_stage(name, config)
        for shard in manifest["shards"]:
            try:
                outcomes.append(run_stage(stage, store, run_id, shard, force=force, show_progress=show_progress))
            except GlaveError as exc:
                failed.append({"stage": name, "shard": shard, "error": str(exc)})
    annotated = 0
    if names == available() and names and names[-1] == available()[-1]:
        last = names[-1]
        done = [v for s in manifest["shards"] if (m := read_commit(store, run_id, last, s)) for v in m["videos_ok"]]
        annotated = mark_annotated(store, config, run_id, done)
    return {
        "run_id": run_id, "store": store.root, "num_videos": manifest["num_videos"], "shards": manifest["shards"],
        "outcomes": [o.to_json() for o in outcomes], "failed": failed, "annotated": annotated,
    }
