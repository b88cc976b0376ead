"""Input videos as local files, checked against the content hash discover recorded.

A local input is read in place; an ``s3://`` input is downloaded into the local cache for the
duration of the pass and deleted afterwards, so disk use stays at one video per process. The
bytes are hashed on the way: outputs are filed under a content-hash video id, so a file replaced
between discover and ingest must not be annotated under the old id.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..config import GlaveConfig
from ..contract import VideoRef
from ..errors import VideoFailure
from ..store import filesystem_for, retrying
from .probe import INPUT_CHANGED, MISSING_INPUT

CHUNK = 8 * 1024 * 1024


@contextlib.contextmanager
def local_input(video: VideoRef, config: GlaveConfig) -> Iterator[str]:
    fs, path = filesystem_for(video.source_uri, config.store.s3)
    if not video.source_uri.startswith("s3://"):
        if not Path(path).is_file():
            raise VideoFailure(MISSING_INPUT, f"{video.file_name} is no longer at its input location")
        _check_hash(_sha256_file(Path(path)), video)
        yield path
        return
    suffix = PurePosixPath(path).suffix.lower()[:8]
    target = Path(config.store.local_cache) / "inputs" / f"{video.video_id}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.part-{os.getpid()}")

    def download() -> str:
        # Each attempt starts over, so a retried transfer never hashes bytes twice.
        digest = hashlib.sha256()
        with fs.open(path, "rb") as src, open(part, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        return digest.hexdigest()

    try:
        try:
            # A store outage is retried, then ends the attempt as an infrastructure fault:
            # never recorded against the video.
            actual = retrying("download", video.source_uri, download, config.store.s3.retry_deadline_s)
        except FileNotFoundError:
            raise VideoFailure(MISSING_INPUT, f"{video.file_name} is no longer at its input location") from None
        _check_hash(actual, video)
        os.replace(part, target)
        yield str(target)
    finally:
        part.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(actual: str, video: VideoRef) -> None:
    if actual != video.content_hash:
        raise VideoFailure(INPUT_CHANGED, f"{video.file_name} changed after discover "
                                          f"(sha256 {actual[:12]}, expected {video.content_hash[:12]})")
