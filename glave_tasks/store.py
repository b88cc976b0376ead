"""One artifact store API over local folders (plain paths, ``file://``) and ``s3://`` URIs.

Keys are relative, ``/``-separated and checked by :func:`glave_tasks.keys.is_safe_key` on every
call, so nothing built from an untrusted name can escape the store root. Local writes are atomic
(temp file + rename); S3 PUTs are atomic per object, and the stage runner writes a commit marker
last because S3 has no rename.

Faults are classified once, here: a missing object is a ``StoreError`` (the caller's to explain);
missing credentials or access denied are ``StoreError`` s in one line; anything transient (5xx,
throttling, resets, timeouts, an endpoint that is down) is retried with backoff for up to
``s3.retry_deadline_s`` and then raised as ``StoreUnavailable``, an infrastructure fault that ends
the stage attempt and is never blamed on a video.

Downloads cached on local disk (``local_path``) are keyed by the object's version (ETag, size,
modification time): a re-written object is fetched again, never read stale.

Conditional writes (``create_if_absent``, ``replace_if_version``) back the writer leases of
:mod:`glave_tasks.lease`: S3 ``If-None-Match`` / ``If-Match`` PUTs, and on local disk exclusive
links and a lock file.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from .config import S3Options
from .errors import StoreError, StoreUnavailable
from .keys import is_safe_key

log = logging.getLogger(__name__)
T = TypeVar("T")

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
        # botocore retries little and quickly; the store's own retry (deadline, backoff) is the
        # one that rides out an outage, so that its duration is what the config says.
        config_kwargs = {"connect_timeout": opts.timeout_s, "read_timeout": opts.timeout_s,
                         "retries": {"max_attempts": 2, "mode": "standard"}}
        fs = fsspec.filesystem("s3", anon=opts.anon, client_kwargs=client_kwargs, config_kwargs=config_kwargs,
                               skip_instance_cache=True, use_listings_cache=False)
        fs.retries = 2  # s3fs's own quick retries of dropped connections; ours follow
        return fs, uri[len("s3://"):].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise StoreError(f"unsupported store URI scheme: {uri!r} (use a local path, file:// or s3://)")
    local = uri[len("file://"):] if uri.startswith("file://") else uri
    return fsspec.filesystem("file"), str(Path(local).expanduser().resolve())


# -- fault classification --------------------------------------------------------------------

_NOT_TRANSIENT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EINVAL, errno.EEXIST, errno.ENOTDIR,
                         errno.EISDIR, errno.ENAMETOOLONG, errno.ENOTEMPTY}


def _credentials_error(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError
    except ImportError:  # pragma: no cover - botocore ships with s3fs
        return False
    return isinstance(exc, (NoCredentialsError, PartialCredentialsError))


def is_transient(exc: BaseException) -> bool:
    """True for faults that a retry may cure: 5xx, throttling, resets, timeouts, refused connections."""
    if isinstance(exc, (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError,
                        NotADirectoryError)) or _credentials_error(exc):
        return False
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        BotoCoreError = ClientError = ()  # type: ignore[assignment,misc,unused-ignore]
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or status in (408, 429) or code in ("SlowDown", "Throttling", "RequestTimeout")
    if isinstance(exc, BotoCoreError):
        return True  # endpoint connection errors, read/connect timeouts, closed connections
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno not in _NOT_TRANSIENT_ERRNOS
    name = type(exc).__module__ + "." + type(exc).__name__
    return name.startswith(("aiohttp.", "asyncio.")) or "Timeout" in type(exc).__name__


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


def retrying(what: str, where: str, fn: Callable[[], T], deadline_s: float,
             on_retry: Callable[[], None] | None = None) -> T:
    """Run an I/O operation; retry transient faults with jittered exponential backoff until
    ``deadline_s`` has passed, then raise ``StoreUnavailable`` (one line, the last cause).

    ``FileNotFoundError`` passes through for the caller to explain; access denied and missing
    credentials become a one-line ``StoreError`` at once: waiting would not cure them.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise StoreError(f"access denied: {what} {where} ({_short(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised as a store error
            if _credentials_error(exc):
                raise StoreError(f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                                 "a profile or a role (never in the glave config)") from None
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # Waiting does not free a disk: say which one is full, at once, on any store.
                local = exc.filename if isinstance(exc.filename, str) else (where if "://" not in where else None)
                room = ""
                with contextlib.suppress(OSError):
                    if local:
                        mount = Path(local).absolute()
                        while not mount.exists() and mount != mount.parent:
                            mount = mount.parent
                        fs_stat = os.statvfs(mount)
                        free = fs_stat.f_bavail * fs_stat.f_frsize
                        while not os.path.ismount(mount) and mount != mount.parent:
                            mount = mount.parent
                        room = f" ({free} bytes free on {mount})"
                raise StoreUnavailable(f"disk full: {what} {where}: {exc.strerror or 'no space left'}{room}") from None
            if not is_transient(exc):
                raise StoreError(f"store error: {what} {where}: {_short(exc)}") from None
            elapsed = time.monotonic() - started
            if deadline_s <= 0 and "://" not in where:
                # A local disk: no deadline to cite, since nothing is retried there.
                raise StoreUnavailable(f"store unavailable: {what} {where} failed: {_short(exc)} "
                                       "(local storage is not retried)") from None
            if elapsed >= deadline_s:
                raise StoreUnavailable(
                    f"store unavailable: {what} {where} failed {attempt + 1} time(s) over {elapsed:.0f} s "
                    f"(store.s3.retry_deadline_s={deadline_s:g}); last error {_short(exc)}") from None
            attempt += 1
            if on_retry is not None:
                on_retry()
            pause = min(8.0, 0.25 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0)
            pause = min(pause, max(0.05, deadline_s - elapsed))
            log.info("%s %s: transient %s; retry %d in %.1f s", what, where, _short(exc), attempt, pause)
            time.sleep(pause)


class ArtifactStore:
    """Read and write artifacts under one root URI."""

    def __init__(self, root: str, s3: S3Options | None = None, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.fs, self._base = filesystem_for(root, s3)
        self.is_local = not root.startswith("s3://")
        self.root = self._base if self.is_local else f"s3://{self._base}"
        self.cache_dir = Path(cache_dir or tempfile.gettempdir()) / "glave-store-cache"
        self.s3 = s3 or S3Options()
        # Local disks do not come back by waiting: a failure there is reported at once.
        self.retry_deadline_s = 0.0 if self.is_local else self.s3.retry_deadline_s
        self.retries_used = 0  # transient faults ridden out, for tests and metrics
        self._s3_client: Any = None
        self._client_lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker process (glave_tasks.parallel) gets a store of its own: same root, options, cache.
        return (type(self), (self.root, self.s3, str(self.cache_dir.parent)))

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

    # -- retries ----------------------------------------------------------------------------
    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run one store operation with the store's retry policy (see :func:`retrying`)."""
        def count() -> None:
            self.retries_used += 1

        return retrying(what, self.uri(key) if key else self.root, fn, self.retry_deadline_s, on_retry=count)

    # -- bytes and JSON ---------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        path = self._path(key)
        return bool(self._call("exists", key, lambda: self.fs.exists(path)))

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            data: bytes = self._call("read", key, lambda: self.fs.cat_file(path))
            return data
        except FileNotFoundError:
            raise StoreError(f"missing artifact: {self.uri(key)}") from None

    def read_if_exists(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object (one request either way)."""
        path = self._path(key)
        try:
            data: bytes = self._call("read", key, lambda: self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        except StoreError as exc:
            if self.is_local and Path(path).is_dir():
                return None
            raise exc from None
        return data

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        if self.is_local:
            self._call("write", key, lambda: _atomic_local_write(Path(path), data))
        else:
            self._call("write", key, lambda: self.fs.pipe_file(path, data))
        return self.uri(key)

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj: Any) -> str:
        return self.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def put_file(self, local_path: str | os.PathLike[str], key: str) -> str:
        path = self._path(key)
        if self.is_local:
            self._call("write", key, lambda: _atomic_local_copy(Path(local_path), Path(path)))
        else:
            self._call("write", key, lambda: self.fs.put_file(str(local_path), path))
        return self.uri(key)

    def version(self, key: str) -> str | None:
        """A tag that changes whenever the object is rewritten (ETag, size, mtime); None if absent."""
        path = self._path(key)
        try:
            info = self._call("stat", key, lambda: self.fs.info(path))
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return _version_tag(path, info)

    def local_path(self, key: str) -> Path:
        """A local file with the key's current content: the file itself locally, a download on S3.

        Downloads are cached by object version, so a key rewritten since (a re-ingest, a forced
        re-run) is downloaded again instead of being served from the cache.
        """
        path = self._path(key)
        if self.is_local:
            if not Path(path).is_file():
                raise StoreError(f"missing artifact: {path}")
            return Path(path)
        try:
            info = self._call("stat", key, lambda: self.fs.info(path))
        except FileNotFoundError:
            raise StoreError(f"missing artifact: {self.uri(key)}") from None
        tag = _version_tag(path, info)
        target = self.cache_dir / "objects" / tag[:2] / tag / Path(key).name
        if target.is_file() and target.stat().st_size == int(info.get("size") or 0):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".part-{os.getpid()}-{threading.get_ident()}-{target.name}")
        try:
            self._call("download", key, lambda: self.fs.get_file(path, str(tmp)))
            got = tmp.stat().st_size
            if got != int(info.get("size") or 0):
                # Rewritten between the stat and the download: the cache must not hold it under
                # the old version's tag. Fetch again from the top.
                tmp.unlink(missing_ok=True)
                return self.local_path(key)
            os.replace(tmp, target)
        except FileNotFoundError:
            raise StoreError(f"missing artifact: {self.uri(key)}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return target

    # -- listing and deletion ---------------------------------------------------------------
    def list(self, prefix: str) -> list[str]:
        """Keys of all files under a prefix, sorted (recursive); ``""`` lists the whole store."""
        base = self._prefix_path(prefix)
        try:
            found = self._call("list", prefix, lambda: self.fs.find(base))
        except FileNotFoundError:
            return []
        start = len(self._base) + 1
        return sorted(p[start:] for p in found if not Path(p).name.startswith(".tmp-"))

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Names of the immediate sub-folders of a prefix (``""``: of the root)."""
        base = self._prefix_path(prefix)
        try:
            entries = self._call("list", prefix, lambda: self.fs.ls(base, detail=True, refresh=True))
        except FileNotFoundError:
            return []
        return sorted(Path(e["name"]).name for e in entries if e["type"] == "directory")

    def delete_prefix(self, prefix: str) -> None:
        base = self._path(prefix)

        def rm() -> None:
            try:
                self.fs.rm(base, recursive=True)
            except FileNotFoundError:
                pass
            self.fs.invalidate_cache()

        self._call("delete", prefix, rm)

    # -- conditional writes (leases) --------------------------------------------------------
    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and the version a conditional replace must name; None if absent."""
        path = self._path(key)
        if self.is_local:
            try:
                data = self._call("read", key, lambda: Path(path).read_bytes())
            except FileNotFoundError:
                return None
            return data, hashlib.sha256(data).hexdigest()
        bucket, obj = path.split("/", 1)

        def get() -> tuple[bytes, str]:
            from botocore.exceptions import ClientError

            try:
                resp = self._client().get_object(Bucket=bucket, Key=obj)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise FileNotFoundError(key) from None
                raise
            return resp["Body"].read(), str(resp["ETag"])

        try:
            return self._call("read", key, get)
        except FileNotFoundError:
            return None

    def read_aged(self, key: str) -> tuple[bytes, str, float] | None:
        """Like :meth:`read_versioned`, plus the object's age: seconds since it was last written,
        by the store's own clock (S3: the response's ``Date`` less ``LastModified``; local: this
        host's clock against the file's mtime). Writers' clocks never enter it, so a lease can be
        judged expired without trusting the clock of the host that wrote it."""
        path = self._path(key)
        if self.is_local:
            def read_local() -> tuple[bytes, str, float]:
                with open(path, "rb") as fh:
                    data = fh.read()
                    mtime = os.fstat(fh.fileno()).st_mtime
                return data, hashlib.sha256(data).hexdigest(), max(0.0, time.time() - mtime)

            try:
                return self._call("read", key, read_local)
            except FileNotFoundError:
                return None
        bucket, obj = path.split("/", 1)

        def get() -> tuple[bytes, str, float]:
            from email.utils import parsedate_to_datetime

            from botocore.exceptions import ClientError

            try:
                resp = self._client().get_object(Bucket=bucket, Key=obj)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise FileNotFoundError(key) from None
                raise
            data = resp["Body"].read()
            header = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
            # LastModified has whole seconds: the age may read up to 1 s high, never low.
            now = parsedate_to_datetime(header).timestamp() if header else time.time()
            return data, str(resp["ETag"]), max(0.0, now - resp["LastModified"].timestamp())

        try:
            return self._call("read", key, get)
        except FileNotFoundError:
            return None

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Write the object only if no object has the key; False when one exists."""
        path = self._path(key)
        if self.is_local:
            return self._call("create", key, lambda: _local_create_exclusive(Path(path), data))
        bucket, obj = path.split("/", 1)
        return self._call("create", key, lambda: self._conditional_put(bucket, obj, data, IfNoneMatch="*"))

    def replace_if_version(self, key: str, data: bytes, version: str) -> bool:
        """Overwrite the object only if it is still at ``version``; False when it changed or vanished."""
        path = self._path(key)
        if self.is_local:
            return self._call("replace", key, lambda: _local_compare_and_swap(Path(path), data, version))
        bucket, obj = path.split("/", 1)
        return self._call("replace", key, lambda: self._conditional_put(bucket, obj, data, IfMatch=version))

    def _client(self) -> Any:
        """A plain boto3 client (conditional requests), same endpoint and credentials as s3fs."""
        with self._client_lock:
            if self._s3_client is None:
                import boto3
                from botocore import UNSIGNED
                from botocore.config import Config

                cfg = Config(connect_timeout=self.s3.timeout_s, read_timeout=self.s3.timeout_s,
                             retries={"max_attempts": 2, "mode": "standard"},
                             signature_version=UNSIGNED if self.s3.anon else None)
                self._s3_client = boto3.client("s3", endpoint_url=self.s3.endpoint_url, region_name=self.s3.region,
                                               config=cfg)
            return self._s3_client

    def _conditional_put(self, bucket: str, obj: str, data: bytes, **condition: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client().put_object(Bucket=bucket, Key=obj, Body=data, **condition)
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status == 412 or code == "PreconditionFailed":
                return False
            if status == 404 or code == "NoSuchKey":
                return False  # If-Match on a key that no longer exists
            if status == 409 or code == "ConditionalRequestConflict":
                return False  # a concurrent conditional write won
            raise

    # -- tables -----------------------------------------------------------------------------
    def write_table(self, key: str, table: pa.Table, schema: pa.Schema | None = None) -> str:
        return self.write_bytes(key, encode_table(table, schema))

    def read_table(self, key: str, schema: pa.Schema | None = None, columns: builtins.list[str] | None = None) -> pa.Table:
        """A Parquet table; with ``columns``, only those are decoded (e.g. tracks without masks)."""
        return decode_table(self.read_bytes(key), self.uri(key), schema, columns)

    def iter_keys(self, prefix: str, suffix: str = "") -> Iterator[str]:
        for key in self.list(prefix):
            if key.endswith(suffix):
                yield key


def encode_table(table: pa.Table, schema: pa.Schema | None = None) -> bytes:
    """A table as the Parquet bytes the store keeps (checked against its schema first)."""
    if schema is not None:
        table = conform(table, schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def decode_table(data: bytes, where: str, schema: pa.Schema | None = None,
                 columns: list[str] | None = None) -> pa.Table:
    """Parquet bytes as a table; a damaged file is a ``StoreError`` naming it, not a bare Arrow error."""
    try:
        table = pq.read_table(io.BytesIO(data), columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise StoreError(f"unreadable table {where}: {_short(exc)}") from None
    if schema is not None and columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    if schema is not None:
        # A nullable column added to a schema after a table was written reads as nulls from
        # it, so older runs stay readable; writes still need every column.
        for f in schema:
            if f.nullable and f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return conform(table, schema) if schema is not None else table


def _version_tag(path: str, info: dict[str, Any]) -> str:
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    stamp = info.get("LastModified") or info.get("last_modified") or info.get("mtime") or ""
    payload = f"{path}\0{etag}\0{info.get('size')}\0{stamp}"
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@contextlib.contextmanager
def _temp_beside(target: Path, data: bytes | None = None) -> Iterator[str]:
    """A temporary file in ``target``'s folder (named so listings skip it), holding ``data`` when
    given; removed on exit unless it was renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        # mkstemp makes 0600 files; published artifacts follow the umask like any other file.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            if data is not None:
                fh.write(data)
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def _atomic_local_write(target: Path, data: bytes) -> None:
    with _temp_beside(target, data) as tmp:
        os.replace(tmp, target)


def _atomic_local_copy(source: Path, target: Path) -> None:
    with _temp_beside(target) as tmp:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def _local_create_exclusive(target: Path, data: bytes) -> bool:
    """Create ``target`` with ``data`` unless it exists: complete content or nothing (link(2))."""
    with _temp_beside(target, data) as tmp:
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        return True


@contextlib.contextmanager
def _local_lock(target: Path) -> Iterator[None]:
    import fcntl

    lock = target.with_name(f".tmp-lock-{target.name}")
    with open(lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _local_compare_and_swap(target: Path, data: bytes, version: str) -> bool:
    if not target.parent.is_dir():
        return False
    with _local_lock(target):
        try:
            current = target.read_bytes()
        except FileNotFoundError:
            return False
        if hashlib.sha256(current).hexdigest() != version:
            return False
        _atomic_local_write(target, data)
        return True


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
