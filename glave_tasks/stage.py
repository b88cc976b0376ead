"""The stage contract and the runner that gives every stage the same guarantees.

A stage is a plain unit of work over one shard: it declares what it reads (upstream stages),
what it writes (tables), and what it needs (CPU, memory, GPUs); it loads its models once in
``setup`` and processes the whole shard in ``process``. The runner makes it idempotent (commit
marker with a fingerprint), isolates per-video failures (errors table, failure ratio) and keeps
readers honest (only committed shards are read).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Iterable, Iterator, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from . import __version__, schemas
from .config import GlaveConfig
from .errors import GlaveError, ShardFailed, UpstreamNotReady, VideoFailure
from .layout import RunLayout
from .store import ArtifactStore

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What a stage's pod requests. GPUs become ``nvidia.com/gpu`` limits."""

    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    ephemeral_storage: str = "20Gi"


@dataclass(frozen=True)
class VideoRef:
    video_id: str
    content_hash: str
    source_uri: str
    file_name: str


class Stage(ABC):
    """Base class of every stage. Subclasses set the class attributes and implement ``process``."""

    name: ClassVar[str]
    family: ClassVar[str] = "cpu"  # image family: cpu | vision | llm
    needs: ClassVar[tuple[str, ...]] = ()  # upstream stages read (committed shards only)
    outputs: ClassVar[tuple[str, ...]] = ()  # tables written, names from schemas.TABLES
    config_sections: ClassVar[tuple[str, ...]] = ("run",)  # config that changes the output

    def __init__(self, config: GlaveConfig) -> None:
        self.config = config

    def resources(self) -> Resources:
        return Resources()

    def model_ids(self) -> dict[str, str]:
        """Model ids/revisions/weights URIs that shape the output (part of the fingerprint)."""
        return {}

    def prompt_versions(self) -> dict[str, str]:
        return {}

    def setup(self) -> None:
        """Load models once per process, before the shard is processed."""

    @abstractmethod
    def process(self, ctx: "ShardContext") -> None:
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

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_id)

    @property
    def failed_ids(self) -> set[str]:
        return {e["video_id"] for e in self.errors}

    def ok_videos(self) -> list[VideoRef]:
        failed = self.failed_ids
        return [v for v in self.videos if v.video_id not in failed]

    # -- reading upstream -------------------------------------------------------------------
    def read(self, stage: str, table: str) -> pa.Table:
        """An upstream table of this shard, limited to the videos this stage works on."""
        if stage not in self.upstream:
            raise GlaveError(f"stage {self.stage!r} did not declare {stage!r} as an input")
        data = self.store.read_table(self.layout.table(stage, self.shard, table), schemas.TABLES[table])
        ids = pa.array([v.video_id for v in self.videos], pa.string())
        return data.filter(pc.is_in(data["video_id"], value_set=ids))

    def upstream_file(self, key: str) -> str:
        """Local path of an upstream blob (downloaded once on S3)."""
        return str(self.store.local_path(key))

    # -- writing ----------------------------------------------------------------------------
    def write(self, table: str, data: pa.Table | list[dict[str, Any]]) -> str:
        """Write one of the stage's output tables; rows of failed videos are dropped."""
        schema = schemas.TABLES[table]
        if isinstance(data, list):
            data = schemas.rows_to_table(data, schema)
        failed = self.failed_ids
        if failed and data.num_rows:
            data = data.filter(pc.invert(pc.is_in(data["video_id"], value_set=pa.array(sorted(failed)))))
        self.counts[table] = data.num_rows
        return self.store.write_table(self.layout.table(self.stage, self.shard, table), data, schema)

    def put_bytes(self, data: bytes, *parts: str) -> str:
        """Store a blob under the shard's files/ folder; returns its key."""
        key = self.layout.file(self.stage, self.shard, *parts)
        self.store.write_bytes(key, data)
        return key

    # -- failures ---------------------------------------------------------------------------
    def fail(self, video_id: str, reason: str, detail: str = "") -> None:
        """Record that one video cannot go through this stage; it is excluded from then on."""
        if video_id in self.failed_ids:
            return
        log.warning("video %s failed %s: %s %s", video_id, self.stage, reason, detail)
        self.errors.append({
            "video_id": video_id, "stage": self.stage, "reason": reason, "detail": detail[:4000],
            "run_id": self.run_id, "shard": self.shard, "recorded_at": datetime.now(timezone.utc),
        })

    @contextlib.contextmanager
    def guard(self, video_id: str) -> Iterator[None]:
        """Run per-video work; a failure is recorded for that video and the shard goes on."""
        try:
            yield
        except VideoFailure as exc:
            self.fail(video_id, exc.reason, exc.detail)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - one bad video must not sink the shard
            self.fail(video_id, "internal_error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")

    def progress(self, items: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
        if not self.show_progress:
            return items
        from tqdm import tqdm

        return tqdm(items, desc=f"{self.stage}[{self.shard}] {desc}", total=total, leave=False)

    def add_metric(self, name: str, value: float) -> None:
        self.metrics[name] = self.metrics.get(name, 0.0) + value


# -- the runner --------------------------------------------------------------------------------


@dataclass
class StageOutcome:
    stage: str
    shard: int
    status: str  # committed | skipped (already committed, same fingerprint)
    marker: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        m = self.marker
        return {
            "stage": self.stage, "shard": self.shard, "status": self.status,
            "videos_in": m.get("videos_in"), "videos_ok": len(m.get("videos_ok", [])),
            "videos_failed": m.get("videos_failed"), "counts": m.get("counts"),
            "duration_s": m.get("duration_s"), "fingerprint": m.get("fingerprint"),
        }


def read_manifest(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    layout = RunLayout(run_id)
    if not store.exists(layout.manifest):
        raise GlaveError(f"run {run_id!r} has no manifest in {store.root} (run discover first)")
    return store.read_json(layout.manifest)


def read_commit(store: ArtifactStore, run_id: str, stage: str, shard: int) -> dict[str, Any] | None:
    key = RunLayout(run_id).commit(stage, shard)
    return store.read_json(key) if store.exists(key) else None


def shard_videos(store: ArtifactStore, run_id: str, shard: int) -> list[VideoRef]:
    table = store.read_table(RunLayout(run_id).videos_table, schemas.VIDEOS)
    rows = table.filter(pc.equal(table["shard"], shard)).to_pylist()
    return [VideoRef(r["video_id"], r["content_hash"], r["source_uri"], r["file_name"]) for r in rows]


def fingerprint(stage: Stage, videos: list[VideoRef], upstream: dict[str, dict[str, Any]]) -> str:
    payload = {
        "stage": stage.name,
        "code_version": __version__,
        "pipeline_version": stage.config.run.pipeline_version,
        "config": stage.config.section_hash(*stage.config_sections),
        "models": stage.model_ids(),
        "prompts": stage.prompt_versions(),
        "upstream": {name: m["fingerprint"] for name, m in sorted(upstream.items())},
        "videos": [v.content_hash for v in videos],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_stage(
    stage: Stage,
    store: ArtifactStore,
    run_id: str,
    shard: int,
    *,
    force: bool = False,
    show_progress: bool = True,
) -> StageOutcome:
    """Run one stage over one shard with the contract's guarantees."""
    layout = RunLayout(run_id)
    manifest = read_manifest(store, run_id)
    if shard not in manifest["shards"]:
        raise GlaveError(f"run {run_id!r} has no shard {shard} (shards: {manifest['shards']})")

    upstream: dict[str, dict[str, Any]] = {}
    for name in stage.needs:
        marker = read_commit(store, run_id, name, shard)
        if marker is None:
            raise UpstreamNotReady(f"{name} shard {shard} of run {run_id!r} is not committed; run it first")
        upstream[name] = marker

    videos = shard_videos(store, run_id, shard)
    for marker in upstream.values():
        ok = set(marker["videos_ok"])
        videos = [v for v in videos if v.video_id in ok]

    fp = fingerprint(stage, videos, upstream)
    existing = read_commit(store, run_id, stage.name, shard)
    if existing and existing.get("fingerprint") == fp and not force:
        log.info("%s shard %d already committed with the same fingerprint; nothing to do", stage.name, shard)
        return StageOutcome(stage.name, shard, "skipped", existing)

    # The marker goes first so that no reader trusts a shard while it is being overwritten.
    if store.exists(layout.commit(stage.name, shard)):
        store.delete_prefix(layout.commit(stage.name, shard))
    store.delete_prefix(layout.shard_prefix(stage.name, shard))

    ctx = ShardContext(store, stage.config, run_id, shard, stage.name, videos, upstream, show_progress=show_progress)
    started = time.time()
    try:
        stage.setup()
        stage.process(ctx)
    except Exception as exc:
        store.write_json(layout.failed(stage.name, shard), {
            "stage": stage.name, "run_id": run_id, "shard": shard, "reason": "crashed",
            "detail": f"{type(exc).__name__}: {exc}", "finished_at": datetime.now(timezone.utc).isoformat(),
        })
        raise
    store.write_table(layout.table(stage.name, shard, "errors"), schemas.rows_to_table(ctx.errors, schemas.ERRORS))

    failed = len(ctx.failed_ids)
    marker = {
        "stage": stage.name, "run_id": run_id, "shard": shard, "fingerprint": fp,
        "code_version": __version__, "pipeline_version": stage.config.run.pipeline_version,
        "models": stage.model_ids(), "prompts": stage.prompt_versions(),
        "videos_in": len(videos), "videos_ok": [v.video_id for v in ctx.ok_videos()], "videos_failed": failed,
        "failures": _count_reasons(ctx.errors), "counts": ctx.counts, "metrics": ctx.metrics,
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(), "duration_s": round(time.time() - started, 3),
    }
    ratio = failed / len(videos) if videos else 0.0
    if ratio > stage.config.run.max_failure_ratio:
        store.write_json(layout.failed(stage.name, shard), {**marker, "reason": "failure_ratio", "ratio": ratio})
        raise ShardFailed(
            f"{stage.name} shard {shard}: {failed}/{len(videos)} videos failed "
            f"(ratio {ratio:.2f} > max_failure_ratio {stage.config.run.max_failure_ratio}); "
            f"reasons: {marker['failures']}"
        )
    store.write_json(layout.commit(stage.name, shard), marker)
    return StageOutcome(stage.name, shard, "committed", marker)


def _count_reasons(errors: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in errors:
        out[e["reason"]] = out.get(e["reason"], 0) + 1
    return out
