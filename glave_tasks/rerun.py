"""Force a stage (and optionally every later stage) to run again, for one shard or all of them,
without Airflow. The stage runner's ``force`` redoes and overwrites; other shards are untouched."""

from __future__ import annotations

from typing import Any

from .config import GlaveConfig
from .errors import GlaveError
from .run import read_manifest
from .runner import run_stage
from .stages import available, build_stage
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
    names = available()
    if stage not in names:
        raise GlaveError(f"unknown stage {stage!r}; stages: {', '.join(names)}")
    chosen = names[names.index(stage):] if downstream else [stage]
    manifest = read_manifest(store, run_id)
    if shard is not None and shard not in manifest["shards"]:
        raise GlaveError(f"run {run_id!r} has no shard {shard} (shards: {manifest['shards']})")
    shards = [shard] if shard is not None else list(manifest["shards"])
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
