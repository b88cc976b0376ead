"""One artifact store API over local folders (plain paths, ``file://``) and ``s3://`` URIs.

Keys are relative, ``/``-separated and checked by :func:`glave_tasks.keys.is_safe_key` on every
call, so nothing built from an untrusted name can escape the store root. Local writes are atomic
(temp file + rename); S3 PUTs are atomic per object, and the stage runner writes a commit marker
last because S3 has no rename.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .config import S3Options
from .errors import StoreError
from .keys import is_safe_key

_UMASK = os.umask(0)
os.umask(_UMASK)


def filesystem_for(uri: str, s3: S3Options | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the filesystem path for a URI or plain local path."""
    if uri.startswith("s3://"):
        opts = s3 or S3Options()
        client_kwargs: dict[str, Any] = {}
        if opts.endpoint_url:
            client_kwargs["endpoint_url"] = opts.endpoint_url
        if opts.region:
            client_kwargs["region_name"] = opts.region
        # No listings cache: other processes (re-run pods, writers a reader waits on) change
        # prefixes under us, and a stale listing makes s3fs report existing keys as missing.
        fs = fsspec.filesystem("s3", anon=opts.anon, client_kwargs=client_kwargs, skip_instance_cache=True,
                               use_listings_cache=False)
        return fs, uri[len("s3://"):].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise StoreError(f"unsupported store URI scheme: {uri!r} (use a local path, file:// or s3://)")
    local = uri[len("file://"):] if uri.startswith("file://") else uri
    return fsspec.filesystem("file"), str(Path(local).expanduser().resolve())


class ArtifactStore:
    """Read and write artifacts under one root URI."""

    def __init__(self, root: str, s3: S3Options | None = None, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.fs, self._base = filesystem_for(root, s3)
        self.is_local = not root.startswith("s3://")
        self.root = self._base if self.is_local else f"s3://{self._base}"
        self.cache_dir = Path(cache_dir or tempfile.gettempdir()) / "glave-store-cache"

    # -- keys -------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        if not is_safe_key(key):
            raise StoreError(f"unsafe object key: {key!r}")
        return f"{self._base}/{key}"

    def _prefix_path(self, prefix: str) -> str:
        """A prefix may also be empty: the whole store."""
        return self._base if prefix in ("", "/") else self._path(prefix.rstrip("/"))

    def uri(self, key: str = "") -> str:
        """The full URI of a key (or of the root), for humans and for other tools."""
        return self.root if not key else (self._path(key) if self.is_local else f"s3://{self._path(key)}")

    # -- bytes and JSON ---------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise StoreError(f"missing artifact: {self.uri(key)}") from None

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        if self.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                # mkstemp makes 0600 files; published artifacts follow the umask like any other file.
                os.fchmod(fd, 0o666 & ~_UMASK)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            self.fs.pipe_file(path, data)
        return self.uri(key)

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj: Any) -> str:
        return self.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def put_file(self, local_path: str | os.PathLike[str], key: str) -> str:
        path = self._path(key)
        if self.is_local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Same temp naming as write_bytes, so listings never show a half-copied file.
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".tmp-")
            os.fchmod(fd, 0o666 & ~_UMASK)
            os.close(fd)
            try:
                shutil.copyfile(local_path, tmp)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            self.fs.put_file(str(local_path), path)
        return self.uri(key)

    def local_path(self, key: str) -> Path:
        """A local file with the key's content: the file itself locally, a cached download on S3."""
        path = self._path(key)
        if self.is_local:
            if not Path(path).exists():
                raise StoreError(f"missing artifact: {path}")
            return Path(path)
        target = self.cache_dir / key
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + f".part-{os.getpid()}")
            try:
                self.fs.get_file(path, str(tmp))
            except FileNotFoundError:
                raise StoreError(f"missing artifact: {self.uri(key)}") from None
            os.replace(tmp, target)
        return target

    # -- listing and deletion ---------------------------------------------------------------
    def list(self, prefix: str) -> list[str]:
        """Keys of all files under a prefix, sorted (recursive); ``""`` lists the whole store."""
        base = self._prefix_path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self._base) + 1
        return sorted(p[start:] for p in found if not Path(p).name.startswith(".tmp-"))

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of a prefix (``""``: of the root)."""
        base = self._prefix_path(prefix)
        try:
            entries = self.fs.ls(base, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(Path(e["name"]).name for e in entries if e["type"] == "directory")

    def delete_prefix(self, prefix: str) -> None:
        base = self._path(prefix)
        if self.fs.exists(base):
            self.fs.rm(base, recursive=True)
        self.fs.invalidate_cache()

    # -- tables -----------------------------------------------------------------------------
    def write_table(self, key: str, table: pa.Table, schema: pa.Schema | None = None) -> str:
        if schema is not None:
            table = conform(table, schema)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return self.write_bytes(key, sink.getvalue())

    def read_table(self, key: str, schema: pa.Schema | None = None) -> pa.Table:
        table = pq.read_table(io.BytesIO(self.read_bytes(key)))
        return conform(table, schema) if schema is not None else table

    def iter_keys(self, prefix: str, suffix: str = "") -> Iterator[str]:
        for key in self.list(prefix):
            if key.endswith(suffix):
                yield key


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Check a table against its declared schema: same columns, castable types."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    extra = [n for n in table.column_names if schema.get_field_index(n) < 0]
    if missing or extra:
        raise StoreError(f"table does not match schema: missing {missing}, unexpected {extra}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise StoreError(f"table does not match schema: {exc}") from exc


def open_store(root: str, s3: S3Options | None = None, cache_dir: str | None = None) -> ArtifactStore:
    return ArtifactStore(root, s3, cache_dir)
