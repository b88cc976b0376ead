"""Model weights from a local path or an ``s3://`` URI, cached on local disk once per pod.

Weights never come from a model hub: production configs name a file (a detector or SAM 2
checkpoint) or a folder (a language model) in the team's bucket, or a path baked into the image.
The first process on a pod downloads it into the local cache and every later load reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from .config import S3Options
from .errors import ConfigError
from .store import filesystem_for

DONE = ".glave-complete"  # written last into a downloaded folder


def resolve_weights(uri: str, cache_dir: str | os.PathLike[str], s3: S3Options | None = None) -> Path:
    """A local file or folder with the weights at ``uri``.

    Local paths (``file://`` or plain) are used in place and must exist. An ``s3://`` object is
    downloaded to ``<cache_dir>/weights/<hash of uri>/<name>``; an ``s3://`` prefix (a model
    folder) is copied to ``<cache_dir>/weights/<hash of uri>/`` and marked complete last. Both
    are written beside the target and renamed, so a pod killed mid-download downloads again
    instead of loading half a model.
    """
    if not uri.startswith("s3://"):
        local = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()
        if not local.exists():
            raise ConfigError(f"model weights not found: {uri}")
        return local.resolve()
    target = Path(cache_dir).expanduser() / "weights" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    fs, path = filesystem_for(uri, s3)
    try:
        is_folder = fs.isdir(path)
    except PermissionError as exc:
        raise ConfigError(f"model weights not readable: {uri} ({exc})") from None
    if is_folder:
        return _download_folder(fs, path, uri, target)
    return _download_file(fs, path, uri, target / PurePosixPath(uri).name)


def _download_file(fs: Any, path: str, uri: str, target: Path) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        fs.get_file(path, str(tmp))
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"model weights not found: {uri}") from None
    except PermissionError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"model weights not readable: {uri} ({exc})") from None
    os.replace(tmp, target)
    return target


def _download_folder(fs: Any, base: str, uri: str, target: Path) -> Path:
    if (target / DONE).exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    found = fs.find(base)
    if not found:
        raise ConfigError(f"model weights not found: {uri}")
    partial = target.with_name(target.name + f".part-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    for item in found:
        rel = item[len(base):].lstrip("/")
        dest = partial / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(item, str(dest))
    (partial / DONE).write_text(uri)
    os.replace(partial, target)
    return target
