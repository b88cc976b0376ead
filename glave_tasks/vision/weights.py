"""Model weights from a local path or an ``s3://`` URI, cached on local disk once per pod.

Weights never come from a model hub: production configs name a file in the team's bucket (or a
path baked into the image); the first process on a pod downloads it into the local cache and
every later load reuses that file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from ..config import S3Options
from ..errors import ConfigError
from ..store import filesystem_for


def resolve_weights(uri: str, cache_dir: str | os.PathLike[str], s3: S3Options | None = None) -> Path:
    """A local file with the weights of ``uri`` (downloaded into ``cache_dir`` when remote)."""
    if not uri.startswith("s3://"):
        local = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()
        if not local.is_file():
            raise ConfigError(f"model weights not found: {uri}")
        return local.resolve()
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = Path(cache_dir).expanduser() / "weights" / digest / PurePosixPath(uri).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fs, path = filesystem_for(uri, s3)
    # Download beside the target and rename: a concurrent or killed download never leaves a
    # half-written file under the final name.
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
