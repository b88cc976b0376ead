"""Find the videos of a nightly run and plan its shards.

Videos are identified by the SHA-256 of their bytes, so a renamed or re-uploaded file is still
the same video, and a run skips videos the same pipeline version already annotated (the index in
the store) unless asked to reprocess.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from . import schemas
from .config import GlaveConfig
from .errors import GlaveError
from .layout import RunLayout, index_key
from .store import ArtifactStore, filesystem_for

HASH_CHUNK = 8 * 1024 * 1024


def list_inputs(input_uri: str, config: GlaveConfig) -> list[tuple[str, int]]:
    """(URI, size) of every file under the input prefix with a configured video extension."""
    fs, base = filesystem_for(input_uri, config.store.s3)
    exts = {e.lower() for e in config.run.video_extensions}
    # A missing local folder or bucket is a typo to report; an S3 prefix with no objects yet is
    # just a quiet night (S3 has no empty folders).
    root = base if not input_uri.startswith("s3://") else base.split("/", 1)[0]
    try:
        if not fs.exists(root):
            raise GlaveError(f"input prefix not found: {input_uri}")
        if fs.isfile(base):
            found = {base: fs.info(base)}
        else:
            found = fs.find(base, detail=True)
    except FileNotFoundError:
        raise GlaveError(f"input prefix not found: {input_uri}") from None
    except PermissionError as exc:
        raise GlaveError(f"input prefix not readable: {input_uri} ({exc})") from None
    scheme = "s3://" if input_uri.startswith("s3://") else ""
    out = []
    for path, info in sorted(found.items()):
        if info.get("type") != "file" or PurePosixPath(path).suffix.lower() not in exts:
            continue
        out.append((f"{scheme}{path}", int(info.get("size") or 0)))
    return out


def content_hash(uri: str, config: GlaveConfig) -> str:
    fs, path = filesystem_for(uri, config.store.s3)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def video_id_for(hash_hex: str) -> str:
    return hash_hex[:20]


def is_annotated(store: ArtifactStore, config: GlaveConfig, video_id: str) -> bool:
    return store.exists(index_key(config.run.pipeline_version, video_id))


def mark_annotated(store: ArtifactStore, config: GlaveConfig, run_id: str, video_ids: list[str]) -> int:
    """Record videos as annotated by this pipeline version (after they are published)."""
    now = datetime.now(timezone.utc).isoformat()
    for vid in video_ids:
        store.write_json(index_key(config.run.pipeline_version, vid), {"video_id": vid, "run_id": run_id, "at": now})
    return len(video_ids)


def discover(
    store: ArtifactStore,
    config: GlaveConfig,
    input_uri: str,
    run_id: str,
    *,
    reprocess: bool = False,
    shard_size: int | None = None,
    max_videos: int | None = None,
) -> dict[str, Any]:
    """Write the run's manifest (videos table + shard plan) and return it.

    Re-running discover for a run that already has a manifest returns that manifest unchanged,
    so a retried DAG task never re-plans shards under stages that already ran.
    """
    layout = RunLayout(run_id)
    if store.exists(layout.manifest):
        return store.read_json(layout.manifest)
    size = shard_size or config.run.shard_size
    limit = max_videos or config.run.max_videos
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped_annotated = duplicates = 0
    for uri, nbytes in list_inputs(input_uri, config):
        digest = content_hash(uri, config)
        vid = video_id_for(digest)
        if vid in seen:
            duplicates += 1
            continue
        seen.add(vid)
        if not reprocess and is_annotated(store, config, vid):
            skipped_annotated += 1
            continue
        if limit is not None and len(rows) >= limit:
            break
        rows.append({
            "video_id": vid, "content_hash": digest, "source_uri": uri,
            "file_name": PurePosixPath(uri).name, "size_bytes": nbytes, "shard": len(rows) // size,
        })
    shards = sorted({r["shard"] for r in rows})
    store.write_table(layout.videos_table, schemas.rows_to_table(rows, schemas.VIDEOS), schemas.VIDEOS)
    manifest = {
        "run_id": run_id, "input_uri": input_uri, "created_at": datetime.now(timezone.utc).isoformat(),
        "pipeline_version": config.run.pipeline_version, "shard_size": size, "shards": shards,
        "num_videos": len(rows), "skipped_already_annotated": skipped_annotated, "duplicates": duplicates,
    }
    store.write_json(layout.manifest, manifest)
    return manifest
