"""The stage contract: what a stage declares and what it sees of the world while it works.

A stage is a plain unit of work over one shard: it declares what it reads (upstream stages),
what it writes (tables), and what it needs (CPU, memory, GPUs); it loads its models once in
``setup`` and processes the whole shard in ``process``. ``runner`` gives every stage the same
guarantees (idempotent commit, per-video failure isolation, committed-only reads).
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .config import GlaveConfig
from .errors import GlaveError, InfrastructureError, VideoFailure
from .layout import RunLayout

if TYPE_CHECKING:
    # Arrow and the store are imported where tables are read or written: the stage classes and
    # the backends are imported by the Airflow side too, which only asks them for declarations.
    import pyarrow as pa

    from .store import ArtifactStore

log = logging.getLogger(__name__)
T = TypeVar("T")


_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(text: str) -> float:
    """A Kubernetes quantity (\"500m\", \"4\", \"16Gi\") as a number, to compare requests."""
    number = text.rstrip("kmMGTi")
    unit = text[len(number):]
    if unit not in _UNITS or not number:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(number) * _UNITS[unit]


@dataclass(frozen=True)
class Resources:
    """What a stage's pod requests. GPUs become ``nvidia.com/gpu`` limits."""

    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    ephemeral_storage: str = "20Gi"

    def union(self, *others: Resources) -> Resources:
        """The larger of each request: a pod that runs all of these at once."""
        out = self
        for o in others:
            out = Resources(
                cpu=max(out.cpu, o.cpu, key=quantity), memory=max(out.memory, o.memory, key=quantity),
                gpus=max(out.gpus, o.gpus),
                ephemeral_storage=max(out.ephemeral_storage, o.ephemeral_storage, key=quantity),
            )
        return out


@dataclass(frozen=True)
class FileIdentity:
    """A local input file as discover saw it while hashing it. While stat still reports the same,
    the file holds the bytes that were hashed: ctime moves on every write and cannot be set back,
    and the inode changes when another file is renamed over the path."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True)
class VideoRef:
    video_id: str
    content_hash: str
    source_uri: str
    file_name: str
    # Local inputs only, when discover recorded it: ingest then trusts content_hash without reading.
    file: FileIdentity | None = None


class Stage(ABC):
    """Base class of every stage. Subclasses set the class attributes and implement ``process``."""

    name: ClassVar[str]
    family: ClassVar[str] = "cpu"  # image family: cpu | vision | llm
    needs: ClassVar[tuple[str, ...]] = ()  # upstream stages read (committed shards only)
    outputs: ClassVar[tuple[str, ...]] = ()  # tables written, names from schemas.TABLES
    config_sections: ClassVar[tuple[str, ...]] = ("run",)  # config that changes the output
    timeout_min: ClassVar[int] = 60  # one shard's execution timeout (orchestration.stage_timeout_min overrides)
    # The stage's heavy work goes to a process pool (parallel.map_videos per video, or
    # parallel.run_in_pool for the shard) and what runs around it is light: on one machine a run
    # processes this stage's shards side by side.
    work_in_pool: ClassVar[bool] = False
    # Modules that work imports, under any config: a run imports them in its idle pool workers
    # ahead of the stage, and the warm launcher once for all its commands. A stage with backends
    # lists theirs with backends.BackendImports.
    warm_imports: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: GlaveConfig) -> None:
        self.config = config

    def resources(self) -> Resources:
        return Resources()

    def model_ids(self) -> dict[str, str]:
        """Model ids/revisions/weights URIs that shape the output (part of the fingerprint)."""
        return {}

    def prompt_versions(self) -> dict[str, str]:
        return {}

    def setup(self) -> None:  # noqa: B027 - optional hook: stages without models have nothing to load
        """Load models once per process, before the shard is processed."""

    @abstractmethod
    def process(self, ctx: ShardContext) -> None:
        """Process every video of ``ctx.videos``; write tables with ``ctx.write``."""


@dataclass
class ShardContext:
    """What a stage sees of the world while it processes one shard."""

    store: ArtifactStore
    config: GlaveConfig
    run_id: str
    shard: int
    stage: str
    videos: list[VideoRef]
    upstream: dict[str, dict[str, Any]]  # stage -> commit marker
    errors: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    show_progress: bool = True
    # The attempt folder every write of this context goes to (None: the shard's top, for tools
    # that build a context outside the runner), what was written there (key relative to that
    # folder -> size and checksum, for the commit marker), and the lease check run before each
    # write: a writer that can no longer prove it holds the lease stops at its next write.
    attempt: str | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fence: Callable[[], None] | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_id)

    def _written(self, key: str, data: bytes) -> None:
        from .integrity import entry

        prefix = self.layout.attempt_prefix(self.stage, self.shard, self.attempt) + "/"
        self.artifacts[key[len(prefix):] if key.startswith(prefix) else key] = entry(data)

    def _check_fence(self) -> None:
        if self.fence is not None:
            self.fence()

    def upstream_key(self, stage: str, table: str) -> str:
        """Where an upstream stage's committed table of this shard lives."""
        return self.layout.table(stage, self.shard, table, self.upstream[stage].get("attempt"))

    def has_upstream(self, stage: str, table: str) -> bool:
        """Whether the upstream shard committed ``table`` (older shards may predate a table)."""
        marker = self.upstream[stage]
        if isinstance(marker.get("artifacts"), dict):
            return f"{table}.parquet" in marker["artifacts"]
        return self.store.exists(self.upstream_key(stage, table))

    def read_upstream_bytes(self, stage: str, table: str) -> bytes:
        """An upstream table's bytes, checked against what its commit marker recorded."""
        from .integrity import check_bytes, expected

        key = self.upstream_key(stage, table)
        data = self.store.read_bytes(key)
        check_bytes(data, expected(self.upstream[stage], f"{table}.parquet"), stage=stage, shard=self.shard,
                    where=self.store.uri(key))
        return data

    @property
    def failed_ids(self) -> set[str]:
        return {e["video_id"] for e in self.errors}

    def ok_videos(self) -> list[VideoRef]:
        failed = self.failed_ids
        return [v for v in self.videos if v.video_id not in failed]

    # -- reading upstream -------------------------------------------------------------------
    def read(self, stage: str, table: str, columns: list[str] | None = None) -> pa.Table:
        """An upstream table of this shard, limited to the videos this stage works on; with
        ``columns``, only those (and ``video_id``) are read."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from . import schemas

        if stage not in self.upstream:
            raise GlaveError(f"stage {self.stage!r} did not declare {stage!r} as an input")
        from .store import decode_table

        if columns is not None and "video_id" not in columns:
            columns = ["video_id", *columns]
        raw = self.read_upstream_bytes(stage, table)
        data = decode_table(raw, self.store.uri(self.upstream_key(stage, table)), schemas.TABLES[table], columns)
        ids = pa.array([v.video_id for v in self.videos], pa.string())
        return data.filter(pc.is_in(data["video_id"], value_set=ids))

    def upstream_file(self, key: str) -> str:
        """Local path of an upstream blob (downloaded once on S3), checked against its commit:
        by size, and in full when small."""
        from .integrity import check_file, expected, relative

        path = self.store.local_path(key)
        for stage, marker in self.upstream.items():
            prefix = self.layout.attempt_prefix(stage, self.shard, marker.get("attempt"))
            rel = relative(marker, prefix, key)
            if rel is not None:
                check_file(path, expected(marker, rel), stage=stage, shard=self.shard, where=self.store.uri(key))
                break
        return str(path)

    # -- writing ----------------------------------------------------------------------------
    def write(self, table: str, data: pa.Table | list[dict[str, Any]]) -> str:
        """Write one of the stage's output tables; rows of failed videos are dropped."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from . import schemas

        schema = schemas.TABLES[table]
        if isinstance(data, list):
            data = schemas.rows_to_table(data, schema)
        from .store import encode_table

        failed = self.failed_ids
        if failed and data.num_rows:
            data = data.filter(pc.invert(pc.is_in(data["video_id"], value_set=pa.array(sorted(failed)))))
        self.counts[table] = data.num_rows
        raw = encode_table(data, schema)
        key = self.layout.table(self.stage, self.shard, table, self.attempt)
        self._check_fence()
        uri = self.store.write_bytes(key, raw)
        self._written(key, raw)
        return uri

    def put_bytes(self, data: bytes, *parts: str) -> str:
        """Store a blob under the attempt's files/ folder; returns its key."""
        key = self.layout.file(self.stage, self.shard, *parts, attempt=self.attempt)
        self._check_fence()
        self.store.write_bytes(key, data)
        self._written(key, data)
        return key

    def write_errors(self) -> str:
        """The shard's per-video failures, as its ``errors`` table (written before the commit)."""
        from . import schemas
        from .store import encode_table

        raw = encode_table(schemas.rows_to_table(self.errors, schemas.ERRORS), schemas.ERRORS)
        key = self.layout.table(self.stage, self.shard, "errors", self.attempt)
        self._check_fence()
        uri = self.store.write_bytes(key, raw)
        self._written(key, raw)
        return uri

    # -- failures ---------------------------------------------------------------------------
    def fail(self, video_id: str, reason: str, detail: str = "") -> None:
        """Record that one video cannot go through this stage; it is excluded from then on."""
        if video_id in self.failed_ids:
            return
        log.warning("video %s failed %s: %s %s", video_id, self.stage, reason, detail)
        self.errors.append({
            "video_id": video_id, "stage": self.stage, "reason": reason, "detail": detail[:4000],
            "run_id": self.run_id, "shard": self.shard, "recorded_at": datetime.now(UTC),
        })

    @contextlib.contextmanager
    def guard(self, video_id: str) -> Iterator[None]:
        """Run per-video work; a failure is recorded for that video and the shard goes on."""
        try:
            yield
        except VideoFailure as exc:
            self.fail(video_id, exc.reason, exc.detail)
        except (KeyboardInterrupt, SystemExit, MemoryError, InfrastructureError):
            raise  # a store outage or a lost lease is the platform's fault, never this video's
        except Exception as exc:  # noqa: BLE001 - one bad video must not sink the shard
            self.fail(video_id, "internal_error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")

    def progress(self, items: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
        if not self.show_progress:
            return items
        from tqdm import tqdm

        bar: Iterable[T] = tqdm(items, desc=f"{self.stage}[{self.shard}] {desc}", total=total, leave=False)
        return bar

    def add_metric(self, name: str, value: float) -> None:
        self.metrics[name] = self.metrics.get(name, 0.0) + value
