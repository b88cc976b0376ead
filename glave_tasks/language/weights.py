"""Model weights from a local folder or an ``s3://`` prefix, downloaded once to a local cache."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..config import S3Options
from ..store import filesystem_for

DONE = ".glave-complete"


def resolve_weights(uri: str, cache_dir: str | os.PathLike[str], s3: S3Options | None = None) -> str:
    """A local folder holding the weights at ``uri``.

    Local paths are used in place. An ``s3://`` prefix is copied into
    ``<cache_dir>/weights/<hash of uri>/`` and marked complete last, so a pod killed mid-download
    downloads again instead of loading half a model.
    """
    if not uri.startswith("s3://"):
        local = uri[len("file://"):] if uri.startswith("file://") else uri
        return str(Path(local).expanduser())
    target = Path(cache_dir) / "weights" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (target / DONE).exists():
        return str(target)
    fs, base = filesystem_for(uri, s3)
    if target.exists():
        shutil.rmtree(target)
    partial = target.with_name(target.name + f".part-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    found = fs.find(base)
    if not found:
        raise FileNotFoundError(f"no weights under {uri}")
    for path in found:
        rel = path[len(base):].lstrip("/")
        dest = partial / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(dest))
    (partial / DONE).write_text(uri)
    os.replace(partial, target)
    return str(target)
