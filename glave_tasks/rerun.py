"""Force a stage (and optionally every later stage) to run again, for one shard or all of them,
without Airflow. The stage runner's ``force`` redoes and overwrites; other shards are untouched."""

from __future__ import annotations

from typing import Any

from .config import GlaveConfig
from .errors import GlaveError
from .run import Run
from .runner import run_stage
from .stages import build_stage, from_stage, stage_class
from .store import ArtifactStore


def rerun(
    store: ArtifactStore,
    config: GlaveConfig,
    run_id: str,
    stage: str,
    *,
    shard: int | None = None,
    downstream: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    stage_class(stage)  # an unknown stage fails here, naming the known ones
    chosen = from_stage(stage) if downstream else [stage]
    run = Run(store, run_id)
    if shard is not None:
        run.check_shard(shard)
    shards = [shard] if shard is not None else run.shards
    outcomes: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    broken: set[int] = set()  # shards whose earlier stage failed in this rerun: later stages skip them
    for name in chosen:
        runner = build_stage(name, config)
        for k in shards:
            if k in broken:
                continue
            try:
                outcomes.append(run_stage(runner, store, run_id, k, force=True, show_progress=show_progress).to_json())
            except GlaveError as exc:
                broken.add(k)
                failed.append({"stage": name, "shard": k, "error": str(exc)})
    return {"run_id": run_id, "stages": chosen, "shards": shards, "outcomes": outcomes, "failed": failed}
