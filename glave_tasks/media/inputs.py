"""Input videos as local files, checked against the content hash discover recorded.

A local input is read in place; an ``s3://`` input is downloaded into the local cache for the
duration of the pass and deleted afterwards, so disk use stays at one video per process. Outputs
are filed under a content-hash video id, so a file replaced between discover and ingest must not
be annotated under the old id: a download is hashed on the way, and a local file whose stat still
matches what discover recorded while hashing it holds the bytes hashed then and is not read again;
any other local file is hashed again before it is decoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..config import GlaveConfig
from ..contract import FileIdentity, VideoRef
from ..errors import VideoFailure
from ..store import filesystem_for, retrying
from .probe import INPUT_CHANGED, MISSING_INPUT

CHUNK = 8 * 1024 * 1024

# How each input's content hash was confirmed (ingest metrics, counted per video).
HASH_REUSED = "input_hash_reused"  # local, stat unchanged since discover: not read again
HASH_RECOMPUTED = "input_hash_recomputed"  # local, stat changed or not recorded: read and hashed
HASH_IN_DOWNLOAD = "input_hash_in_download"  # s3://, hashed in the download pass
INPUT_S = "input_s"  # seconds spent making inputs available: stat, hash or download

Metric = Callable[[str, float], None]


@contextlib.contextmanager
def local_input(video: VideoRef, config: GlaveConfig, metric: Metric | None = None) -> Iterator[str]:
    """The video as a local path, its bytes confirmed to be those discover hashed; ``metric``
    receives how they were confirmed and the seconds it took."""
    count = metric or (lambda name, value: None)
    started = time.monotonic()
    fs, path = filesystem_for(video.source_uri, config.store.s3)
    if not video.source_uri.startswith("s3://"):
        try:
            st: os.stat_result | None = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise VideoFailure(MISSING_INPUT, f"{video.file_name} is no longer at its input location")
        if FileIdentity.of(st) == video.file:
            count(HASH_REUSED, 1)
        else:
            # Written, replaced or touched since, or never recorded (a store from before discover
            # recorded it, a file discover saw being written): the bytes decide, so the same
            # bytes under a new stat go ahead.
            count(HASH_RECOMPUTED, 1)
            _check_hash(_sha256_file(Path(path)), video)
        count(INPUT_S, time.monotonic() - started)
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
        count(HASH_IN_DOWNLOAD, 1)
        _check_hash(actual, video)
        os.replace(part, target)
        count(INPUT_S, time.monotonic() - started)
        yield str(target)
    finally:
        part.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _check_hash(actual: str, video: VideoRef) -> None:
    if actual != video.content_hash:
        raise VideoFailure(INPUT_CHANGED, f"{video.file_name} changed after discover "
                                          f"(sha256 {actual[:12]}, expected {video.content_hash[:12]})")
