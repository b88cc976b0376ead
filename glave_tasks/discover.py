"""Find the videos of a nightly run and plan its shards.

Videos are identified by the SHA-256 of their bytes, so a renamed or re-uploaded file is still
the same video, and a run skips videos the same pipeline version already annotated (the index in
the store) unless asked to reprocess. A local file's stat is recorded beside its hash, so ingest
reads the file again only if it changed since.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from . import schemas
from .config import GlaveConfig
from .contract import FileIdentity
from .errors import ConfigError, GlaveError, InfrastructureError, StoreError
from .layout import RunLayout, index_key
from .store import ArtifactStore, filesystem_for, retrying

HASH_CHUNK = 8 * 1024 * 1024


# Why an input was not taken: every file (and every odd entry) under the prefix is accounted for.
NOT_VIDEO_EXTENSION = "not_a_video_extension"
DIRECTORY_NAMED_LIKE_VIDEO = "directory_named_like_video"
DANGLING_LINK = "dangling_link"
SYMLINK_LOOP = "symlink_loop"
UNREADABLE = "unreadable"
NOT_REGULAR_FILE = "not_a_regular_file"
DUPLICATE = "duplicate"
ALREADY_ANNOTATED = "already_annotated"
OVER_MAX_VIDEOS = "over_max_videos"
UNSAFE_KEY = "unsafe_key"
FOLDER_MARKER = "folder_marker"


def scan_inputs(input_uri: str, config: GlaveConfig) -> tuple[list[tuple[str, int]], list[dict[str, str]]]:
    """Every entry under the input prefix: (URI, size) of the candidate videos, and one
    ``{uri, reason, detail}`` for each entry not taken (wrong extension, a directory named like a
    video, a dangling link, a symlink loop, an unreadable entry)."""
    exts = {e.lower() for e in config.run.video_extensions}
    if input_uri.startswith("s3://"):
        return _scan_s3(input_uri, config, exts)
    local = input_uri[len("file://"):] if input_uri.startswith("file://") else input_uri
    return _scan_local(Path(local).expanduser(), exts)


def list_inputs(input_uri: str, config: GlaveConfig) -> list[tuple[str, int]]:
    """(URI, size) of every file under the input prefix with a configured video extension."""
    return scan_inputs(input_uri, config)[0]


def _scan_s3(input_uri: str, config: GlaveConfig, exts: set[str]) -> tuple[list[tuple[str, int]], list[dict[str, str]]]:
    fs, base = filesystem_for(input_uri, config.store.s3)
    deadline = config.store.s3.retry_deadline_s
    # A missing bucket is a typo to report; an S3 prefix with no objects yet is just a quiet night.
    bucket = base.split("/", 1)[0]
    try:
        if not retrying("list", f"s3://{bucket}", lambda: fs.exists(bucket), deadline):
            raise GlaveError(f"input prefix not found: {input_uri}")
        if retrying("stat", input_uri, lambda: fs.isfile(base), deadline):
            found = {base: retrying("stat", input_uri, lambda: fs.info(base), deadline)}
        else:
            # Objects only: a listing with folders folds an object into a folder of the same
            # name ("in/x/.." beside "in/x/../y.mp4") and loses it from the accounting.
            found = retrying("list", input_uri, lambda: fs.find(base, detail=True, withdirs=False), deadline)
    except FileNotFoundError:
        raise GlaveError(f"input prefix not found: {input_uri}") from None
    taken: list[tuple[str, int]] = []
    skipped: list[dict[str, str]] = []
    prefixes: set[str] = set()
    for path, info in sorted(found.items()):
        uri = f"s3://{path}"
        # Only the listing's own "/" goes: an empty segment ("in//x.mp4") is part of the key.
        rel = path[len(base) + 1:] if path.startswith(base + "/") else PurePosixPath(path).name
        size = int(info.get("size") or 0)
        if info.get("type") == "directory":
            continue  # not an object (a store that reports prefixes anyway); its objects are listed
        parent = path.rsplit("/", 1)[0]
        while parent.startswith(base + "/") and parent not in prefixes:
            prefixes.add(parent)
            parent = parent.rsplit("/", 1)[0]
        if path.endswith("/") and size == 0 and (rel in ("", "/") or _unsafe_key(rel[:-1]) is None):
            skipped.append(_not_taken(uri, FOLDER_MARKER, "an empty object ending in '/', as consoles create for a folder"))
            continue
        unsafe = _unsafe_key(rel)
        if unsafe is not None:
            skipped.append(_not_taken(uri, UNSAFE_KEY, unsafe))
            continue
        suffix = PurePosixPath(path).suffix.lower()
        if suffix not in exts:
            skipped.append(_not_taken(uri, NOT_VIDEO_EXTENSION, f"extension {suffix or '(none)'!r} is not one of "
                                                                f"run.video_extensions"))
            continue
        taken.append((uri, size))
    for prefix in sorted(prefixes):
        if PurePosixPath(prefix).suffix.lower() in exts and _unsafe_key(prefix[len(base) + 1:]) is None:
            skipped.append(_not_taken(f"s3://{prefix}", DIRECTORY_NAMED_LIKE_VIDEO, "a prefix (folder), not an object; "
                                                                                  "the objects under it were searched"))
    return taken, skipped


def _unsafe_key(rel: str) -> str | None:
    """Why an object key (relative to the input prefix) is refused, or None. Dot segments, empty
    segments and control characters name another object to any client or proxy that normalises
    paths, and a key ending in '/' is a folder's name, not a file's."""
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        return "the key holds control characters"
    if rel.endswith("/"):
        return "the key ends in '/' (a folder marker) but the object holds bytes"
    bad = [seg for seg in rel.split("/") if seg in ("", ".", "..")]
    if bad:
        shown = "an empty segment ('//')" if "" in bad else f"a {bad[0]!r} segment"
        return f"the key has {shown}, which path-normalising clients resolve to another object"
    return None


def _scan_local(base: Path, exts: set[str]) -> tuple[list[tuple[str, int]], list[dict[str, str]]]:
    if not base.exists() and not base.is_symlink():
        raise GlaveError(f"input prefix not found: {base}")
    taken: list[tuple[str, int]] = []
    skipped: list[dict[str, str]] = []
    if not base.is_dir():
        if base.is_file():
            taken.append((str(base.resolve()), base.stat().st_size))
            return taken, skipped
        raise GlaveError(f"input prefix is neither a file nor a folder: {base}")
    root = base.resolve()
    visited: set[str] = set()

    def walk(folder: Path, shown: str, ancestors: tuple[str, ...]) -> None:
        real = os.path.realpath(folder)
        if real in ancestors:
            skipped.append(_not_taken(shown, SYMLINK_LOOP, f"links back to {real}, a folder above it"))
            return
        if real in visited:
            skipped.append(_not_taken(shown, DUPLICATE, f"the same folder as {real}, already searched"))
            return
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(_not_taken(shown, UNREADABLE, exc.strerror or str(exc)))
            return
        for entry in entries:
            path = f"{shown}/{entry.name}"
            suffix = PurePosixPath(entry.name).suffix.lower()
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = entry.is_file(follow_symlinks=True)
                if entry.is_symlink():
                    os.stat(entry.path)  # raises for dangling links and loops
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    skipped.append(_not_taken(path, SYMLINK_LOOP, "a link that resolves to itself"))
                elif exc.errno == errno.ENOENT:
                    skipped.append(_not_taken(path, DANGLING_LINK, f"points to {os.readlink(entry.path)!r}, which is missing"))
                else:
                    skipped.append(_not_taken(path, UNREADABLE, exc.strerror or str(exc)))
                continue
            if is_dir:
                if suffix in exts:
                    skipped.append(_not_taken(path, DIRECTORY_NAMED_LIKE_VIDEO,
                                              "a folder, not a video file; the files in it were searched"))
                walk(Path(entry.path), path, (*ancestors, real))
            elif not is_file:
                skipped.append(_not_taken(path, NOT_REGULAR_FILE, "a socket, pipe or device"))
            elif suffix not in exts:
                skipped.append(_not_taken(path, NOT_VIDEO_EXTENSION,
                                          f"extension {suffix or '(none)'!r} is not one of run.video_extensions"))
            elif not os.access(entry.path, os.R_OK):
                skipped.append(_not_taken(path, UNREADABLE, "no read permission"))
            else:
                taken.append((path, os.stat(entry.path).st_size))

    walk(root, str(root), ())
    return taken, skipped


def _not_taken(uri: str, reason: str, detail: str) -> dict[str, str]:
    return {"uri": uri, "reason": reason, "detail": detail}


def hash_input(uri: str, config: GlaveConfig) -> tuple[str, FileIdentity | None]:
    """The SHA-256 of an input's bytes and, for a local file, its identity while they were read:
    ingest reads the file again only when its stat no longer matches. None for ``s3://`` inputs
    (ingest downloads and hashes them in one pass anyway) and for a file that changed during the
    read or was written too recently for its stat to tell a later write apart."""
    fs, path = filesystem_for(uri, config.store.s3)
    if uri.startswith("s3://"):
        def read() -> tuple[str, FileIdentity | None]:
            digest = hashlib.sha256()
            with fs.open(path, "rb") as fh:
                while chunk := fh.read(HASH_CHUNK):
                    digest.update(chunk)
            return digest.hexdigest(), None

        return retrying("hash", uri, read, config.store.s3.retry_deadline_s)
    return retrying("hash", uri, lambda: _hash_local(path), 0.0)


# A write within the same timestamp tick as the one discover saw leaves stat unchanged. Ticks are
# a few ms on ext4/xfs/btrfs but 1-2 s on coarser filesystems (FAT, HFS+, some network mounts),
# so a file changed this recently is hashed again at ingest rather than trusted by its stat.
SETTLE_NS = 3_000_000_000


def _hash_local(path: str) -> tuple[str, FileIdentity | None]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        # The open descriptor's stat describes the bytes read, even if a new file is renamed
        # over the path meanwhile (ingest then sees another inode and hashes again).
        before = FileIdentity.of(os.fstat(fh.fileno()))
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
        after = FileIdentity.of(os.fstat(fh.fileno()))
    # Only ctime: the kernel sets it on every write, mtime can be set to anything.
    settled = time.time_ns() - after.ctime_ns >= SETTLE_NS
    return digest.hexdigest(), after if before == after and settled else None


def video_id_for(hash_hex: str) -> str:
    return hash_hex[:20]


def annotator(config: GlaveConfig) -> str:
    """Who annotates: the engine and the model (and revision) behind captions and QA."""
    e = config.engine
    if e.backend == "rules":
        return "rules"
    return f"{e.backend}:{e.model or e.weights}@{e.revision or 'unpinned'}"


def index_scope(config: GlaveConfig) -> str:
    """The annotated index is kept per pipeline version AND annotator: a video the rules engine
    annotated is still new to a run with a vision-language model, and to another model."""
    return f"{config.run.pipeline_version}+{annotator(config)}"


def is_annotated(store: ArtifactStore, config: GlaveConfig, video_id: str) -> bool:
    return store.exists(index_key(index_scope(config), video_id))


def mark_annotated(store: ArtifactStore, config: GlaveConfig, run_id: str, video_ids: list[str]) -> int:
    """Record videos as annotated by this pipeline version and annotator (after they are published)."""
    now = datetime.now(UTC).isoformat()
    for vid in video_ids:
        store.write_json(index_key(index_scope(config), vid), {
            "video_id": vid, "run_id": run_id, "at": now, "pipeline_version": config.run.pipeline_version,
            "annotator": annotator(config)})
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
    if shard_size is not None and shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    if max_videos is not None and max_videos < 1:
        raise ConfigError(f"max videos must be at least 1, got {max_videos}")
    if store.exists(layout.manifest):
        existing: dict[str, Any] = store.read_json(layout.manifest)
        return existing
    from .lease import hold

    # Two discovers of one run id (a retried task beside a slow first try): one plans, the other
    # waits and returns that plan.
    with hold(store, run_id, [("discover", None)], ttl_s=config.store.lease_ttl_s, wait_s=config.store.lease_wait_s):
        if store.exists(layout.manifest):
            planned: dict[str, Any] = store.read_json(layout.manifest)
            return planned
        return _plan(store, config, input_uri, run_id, reprocess=reprocess,
                     size=shard_size or config.run.shard_size, limit=max_videos or config.run.max_videos)


def _plan(store: ArtifactStore, config: GlaveConfig, input_uri: str, run_id: str, *, reprocess: bool, size: int,
          limit: int | None) -> dict[str, Any]:
    layout = RunLayout(run_id)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    candidates, not_taken = scan_inputs(input_uri, config)
    entries = len(candidates) + len(not_taken)
    for uri, nbytes in candidates:
        if limit is not None and len(rows) >= limit:
            not_taken.append(_not_taken(uri, OVER_MAX_VIDEOS, f"the run takes at most {limit} videos (max_videos)"))
            continue
        try:
            digest, identity = hash_input(uri, config)
        except (OSError, StoreError) as exc:
            if isinstance(exc, InfrastructureError):
                raise
            not_taken.append(_not_taken(uri, UNREADABLE, str(exc)[:300]))
            continue
        vid = video_id_for(digest)
        if vid in seen:
            not_taken.append(_not_taken(uri, DUPLICATE, f"same content as {seen[vid]}"))
            continue
        seen[vid] = uri
        if not reprocess and is_annotated(store, config, vid):
            not_taken.append(_not_taken(uri, ALREADY_ANNOTATED, f"video {vid} was published by pipeline "
                                                                f"{config.run.pipeline_version} (use --reprocess)"))
            continue
        rows.append({
            "video_id": vid, "content_hash": digest, "source_uri": uri, "file_name": PurePosixPath(uri).name,
            # The size of the bytes hashed where known (the listing's may be older).
            "size_bytes": identity.size if identity else nbytes, "shard": len(rows) // size,
            "file_mtime_ns": identity.mtime_ns if identity else None,
            "file_ctime_ns": identity.ctime_ns if identity else None,
            "file_inode": identity.inode if identity else None,
        })
    shards = sorted({r["shard"] for r in rows})
    reasons = Counter(n["reason"] for n in not_taken)
    store.write_table(layout.videos_table, schemas.rows_to_table(rows, schemas.VIDEOS), schemas.VIDEOS)
    manifest = {
        "run_id": run_id, "input_uri": input_uri, "created_at": datetime.now(UTC).isoformat(),
        "pipeline_version": config.run.pipeline_version, "shard_size": size, "shards": shards,
        "num_videos": len(rows), "skipped_already_annotated": reasons[ALREADY_ANNOTATED],
        # Accounting: every entry seen is either a video of the run or listed as not taken.
        "duplicates": reasons[DUPLICATE], "entries_seen": entries,
        "not_taken": sorted(not_taken, key=lambda n: n["uri"]), "not_taken_by_reason": dict(sorted(reasons.items())),
    }
    store.write_json(layout.manifest, manifest)
    return manifest
