"""Artifact integrity: what a commit marker records of each artifact, and how readers check it.

The runner records every artifact an attempt writes (its key relative to the attempt's folder,
its size and SHA-256) in the commit marker, and seals the marker with a checksum of its own body.
Readers check tables in full before decoding them, and files by size always and in full when they
are small enough to hash on the way (frames are). A mismatch is a ``CorruptArtifact`` that names
the file and the shard that wrote it; the runner then marks that shard corrupt, so a re-run
recomputes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import CorruptArtifact

SEAL = "marker_sha256"
# Files up to this size are hashed in full when read; larger ones are checked by size alone.
FULL_CHECK_MAX_BYTES = 64 * 2**20


def entry(data: bytes) -> dict[str, Any]:
    """What the marker keeps of one artifact."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _body_digest(marker: dict[str, Any]) -> str:
    body = {k: v for k, v in marker.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def seal(marker: dict[str, Any]) -> dict[str, Any]:
    """The marker with a checksum of its own body, so a damaged marker is told from a good one."""
    return {**marker, SEAL: _body_digest(json.loads(json.dumps(marker, default=str)))}


def torn_reason(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Parse a commit marker: (marker, None) when whole, (None, why) when torn or damaged."""
    try:
        marker = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
    if not isinstance(marker, dict):
        return None, "not a JSON object"
    missing = [k for k in ("fingerprint", "videos_ok", "videos_in") if k not in marker]
    if missing:
        return None, f"fields missing: {', '.join(missing)}"
    if SEAL in marker and marker[SEAL] != _body_digest(marker):
        return None, "its checksum does not match its content"
    return marker, None


def relative(marker: dict[str, Any], prefix: str, key: str) -> str | None:
    """``key`` relative to the committed attempt's folder ``prefix``, or None when outside it."""
    head = prefix.rstrip("/") + "/"
    return key[len(head):] if key.startswith(head) else None


def expected(marker: dict[str, Any], rel: str | None) -> dict[str, Any] | None:
    """The marker's record of an artifact; None for markers written before artifacts were recorded."""
    artifacts = marker.get("artifacts")
    if not isinstance(artifacts, dict) or rel is None:
        return None
    found = artifacts.get(rel)
    return found if isinstance(found, dict) else {}


def check_bytes(data: bytes, want: dict[str, Any] | None, *, stage: str, shard: int, where: str) -> None:
    if want is None:
        return
    if not want:
        raise CorruptArtifact(f"{where} is not among the artifacts committed by {stage} shard {shard}",
                              stage=stage, shard=shard, key=where)
    if len(data) != want.get("size"):
        raise CorruptArtifact(f"{where}: {len(data)} bytes, committed with {want.get('size')} "
                              f"(by {stage} shard {shard})", stage=stage, shard=shard, key=where)
    if want.get("sha256") and hashlib.sha256(data).hexdigest() != want["sha256"]:
        raise CorruptArtifact(f"{where}: checksum differs from the one committed by {stage} shard {shard}",
                              stage=stage, shard=shard, key=where)


def check_file(path: str | os.PathLike[str], want: dict[str, Any] | None, *, stage: str, shard: int,
               where: str) -> None:
    """A local copy of an artifact: by size always, in full when small enough."""
    if want is None:
        return
    size = Path(path).stat().st_size
    if want and size == want.get("size") and size > FULL_CHECK_MAX_BYTES:
        return
    if want and size == want.get("size"):
        check_bytes(Path(path).read_bytes(), want, stage=stage, shard=shard, where=where)
        return
    if not want:
        check_bytes(b"", want, stage=stage, shard=shard, where=where)
    raise CorruptArtifact(f"{where}: {size} bytes, committed with {want.get('size')} (by {stage} shard {shard})",
                          stage=stage, shard=shard, key=where)
