"""Reading a run from the store: its manifest, the commit markers of its shards, its videos."""

from __future__ import annotations

from typing import Any

import pyarrow.compute as pc

from . import schemas
from .contract import VideoRef
from .errors import GlaveError
from .layout import RunLayout
from .store import ArtifactStore


def read_manifest(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    layout = RunLayout(run_id)
    if not store.exists(layout.manifest):
        raise GlaveError(f"run {run_id!r} has no manifest in {store.root} (run discover first)")
    return store.read_json(layout.manifest)


def read_commit(store: ArtifactStore, run_id: str, stage: str, shard: int) -> dict[str, Any] | None:
    key = RunLayout(run_id).commit(stage, shard)
    return store.read_json(key) if store.exists(key) else None


def shard_videos(store: ArtifactStore, run_id: str, shard: int) -> list[VideoRef]:
    table = store.read_table(RunLayout(run_id).videos_table, schemas.VIDEOS)
    rows = table.filter(pc.equal(table["shard"], shard)).to_pylist()
    return [VideoRef(r["video_id"], r["content_hash"], r["source_uri"], r["file_name"]) for r in rows]
