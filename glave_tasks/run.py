"""One pipeline run as stored: the one reader of its manifest, commit markers, tables, errors and
status. Readers trust committed shards only (a commit marker is written last by the runner)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import schemas
from .contract import FileIdentity, VideoRef
from .errors import GlaveError
from .layout import RunLayout
from .store import ArtifactStore


class Run:
    """A run in a store. The manifest is read once, on first use; markers and tables on each call."""

    def __init__(self, store: ArtifactStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.layout = RunLayout(run_id)

    # -- the plan ---------------------------------------------------------------------------
    @cached_property
    def manifest(self) -> dict[str, Any]:
        if not self.store.exists(self.layout.manifest):
            raise GlaveError(f"run {self.run_id!r} has no manifest in {self.store.root} (run discover first)")
        manifest: dict[str, Any] = self.store.read_json(self.layout.manifest)
        return manifest

    @property
    def shards(self) -> list[int]:
        return [int(k) for k in self.manifest["shards"]]

    @property
    def num_videos(self) -> int:
        return int(self.manifest["num_videos"])

    def check_shard(self, shard: int) -> None:
        if shard not in self.shards:
            raise GlaveError(f"run {self.run_id!r} has no shard {shard} (shards: {self.shards})")

    def videos(self) -> pa.Table:
        """The run's videos table (every video, its content hash and its shard)."""
        return self.store.read_table(self.layout.videos_table, schemas.VIDEOS)

    def shard_videos(self, shard: int) -> list[VideoRef]:
        table = self.videos()
        rows = table.filter(pc.equal(table["shard"], shard)).to_pylist()
        return [VideoRef(r["video_id"], r["content_hash"], r["source_uri"], r["file_name"], _file_identity(r))
                for r in rows]

    # -- markers ----------------------------------------------------------------------------
    def marker(self, stage: str, shard: int) -> tuple[dict[str, Any] | None, str | None]:
        """(the commit marker, None), (None, why it is torn) or (None, None) when there is none."""
        from .integrity import torn_reason

        key = self.layout.commit(stage, shard)
        raw = self.store.read_if_exists(key)
        if raw is None:
            return None, None
        marker, torn = torn_reason(raw)
        return (marker, None) if marker is not None else (None, f"torn commit marker {self.store.uri(key)}: {torn}")

    def commit(self, stage: str, shard: int) -> dict[str, Any] | None:
        """The commit marker of a stage's shard, or None while it is not committed (a torn marker
        commits nothing: :meth:`status` shows it as torn)."""
        return self.marker(stage, shard)[0]

    def table_key(self, stage: str, shard: int, name: str, marker: dict[str, Any]) -> str:
        """Where a committed shard's table lives: in the attempt its marker names."""
        return self.layout.table(stage, shard, name, marker.get("attempt"))

    def file_key(self, stage: str, shard: int, marker: dict[str, Any], *parts: str) -> str:
        return self.layout.file(stage, shard, *parts, attempt=marker.get("attempt"))

    def read_checked(self, stage: str, shard: int, key: str, marker: dict[str, Any]) -> bytes:
        """A committed artifact's bytes, checked against what the marker recorded of it."""
        from .integrity import check_bytes, expected, relative

        data = self.store.read_bytes(key)
        rel = relative(marker, self.layout.attempt_prefix(stage, shard, marker.get("attempt")), key)
        check_bytes(data, expected(marker, rel), stage=stage, shard=shard, where=self.store.uri(key))
        return data

    def commits(self, stage: str) -> dict[int, dict[str, Any]]:
        """Commit markers of the stage's committed shards, by shard."""
        return {k: m for k in self.shards if (m := self.commit(stage, k)) is not None}

    def failure(self, stage: str, shard: int) -> dict[str, Any] | None:
        """Why the last attempt of a stage's shard did not commit, if it did not."""
        return self._note(self.layout.failed(stage, shard))

    def corruption(self, stage: str, shard: int) -> dict[str, Any] | None:
        """What a reader found damaged in the shard's last commit, if one did."""
        return self._note(self.layout.corrupt(stage, shard))

    def _note(self, key: str) -> dict[str, Any] | None:
        import json

        raw = self.store.read_if_exists(key)
        if raw is None:
            return None
        try:
            info = json.loads(raw)
            if isinstance(info, dict):
                return info
        except (ValueError, UnicodeDecodeError):
            pass
        return {"reason": "torn", "detail": f"torn status file {self.store.uri(key)}"}

    def ran(self, stage: str) -> bool:
        """Whether the stage left anything for this run (a commit, a failure, a partial shard)."""
        return bool(self.store.list(self.layout.stage_prefix(stage)))

    def videos_ok(self, stage: str) -> list[str]:
        """Videos that went through ``stage`` successfully, over all committed shards."""
        return [vid for m in self.commits(stage).values() for vid in m["videos_ok"]]

    # -- tables -----------------------------------------------------------------------------
    def table(self, name: str) -> pa.Table:
        """A stage output table over the run's committed shards, concatenated."""
        from .stages import table_owners

        owners = table_owners()
        if name not in owners:
            raise GlaveError(f"no stage writes a table named {name!r}")
        return self._concat(owners[name], name, schemas.TABLES[name])

    def tables(self, names: list[str] | None = None) -> dict[str, pa.Table]:
        """The named stage tables (default: all but the working ones) plus ``videos``."""
        from .stages import table_owners

        out: dict[str, pa.Table] = {"videos": self.videos()}
        for name in names or [t for t in table_owners() if t not in schemas.WORKING_TABLES]:
            out[name] = self.table(name)
        return out

    def errors(self, stage: str) -> pa.Table:
        """Per-video failures the stage recorded, in committed shards and in shards that did not
        commit because too many of their videos failed."""
        return self._concat(stage, "errors", schemas.ERRORS, self.shards)

    def _concat(self, stage: str, name: str, schema: pa.Schema, shards: Iterable[int] | None = None) -> pa.Table:
        """A table over committed shards (checked against their markers); with ``shards``, also
        over shards whose last attempt failed (the errors of that attempt)."""
        from .store import decode_table

        parts = []
        committed = self.commits(stage)
        for shard in committed if shards is None else shards:
            marker = committed.get(shard)
            if marker is not None:
                key = self.table_key(stage, shard, name, marker)
                if not _committed(marker, f"{name}.parquet") and not self.store.exists(key):
                    continue
                parts.append(decode_table(self.read_checked(stage, shard, key, marker), self.store.uri(key), schema))
                continue
            failure = self.failure(stage, shard)
            if failure is None:
                continue
            key = self.layout.table(stage, shard, name, failure.get("attempt"))
            if self.store.exists(key):
                parts.append(self.store.read_table(key, schema))
        return pa.concat_tables(parts) if parts else schemas.empty(schema)

    # -- status -----------------------------------------------------------------------------
    def status(self, stages: list[str] | None = None) -> dict[str, Any]:
        """Stage x shard states (committed, failed, missing), from the markers alone."""
        from .stages import available

        out: dict[str, Any] = {"run_id": self.run_id, "store": self.store.root, "num_videos": self.num_videos,
                               "shards": self.shards, "stages": {}}
        for stage in stages or available():
            rows = []
            failures: dict[str, int] = {}
            for shard in self.shards:
                marker, torn = self.marker(stage, shard)
                if torn is not None:
                    failures["torn_marker"] = failures.get("torn_marker", 0) + 1
                    rows.append({"shard": shard, "state": "torn", "reason": "torn_marker", "detail": torn})
                elif marker is not None:
                    for reason, n in marker.get("failures", {}).items():
                        failures[reason] = failures.get(reason, 0) + n
                    rows.append({"shard": shard, "state": "committed", "videos_in": marker["videos_in"],
                                 "videos_ok": len(marker["videos_ok"]), "videos_failed": marker["videos_failed"],
                                 "counts": marker.get("counts", {}), "duration_s": marker.get("duration_s")})
                elif (info := self.corruption(stage, shard)) is not None:
                    failures["corrupt"] = failures.get("corrupt", 0) + 1
                    rows.append({"shard": shard, "state": "corrupt", "reason": "corrupt", "detail": info.get("detail")})
                elif (info := self.failure(stage, shard)) is not None:
                    rows.append({"shard": shard, "state": "failed", "reason": info.get("reason"),
                                 "detail": info.get("detail") or str(info.get("failures", ""))})
                else:
                    rows.append({"shard": shard, "state": "missing"})
            out["stages"][stage] = {"shards": rows, "failures": failures,
                                    "committed": sum(r["state"] == "committed" for r in rows)}
        return out


def _committed(marker: dict[str, Any], rel: str) -> bool:
    """Whether the marker records the artifact; markers from before artifacts were recorded say nothing."""
    artifacts = marker.get("artifacts")
    return isinstance(artifacts, dict) and rel in artifacts


def _file_identity(row: dict[str, Any]) -> FileIdentity | None:
    """What discover recorded of a local input's stat, if it recorded it."""
    stamps = (row["file_mtime_ns"], row["file_ctime_ns"], row["file_inode"])
    if any(v is None for v in stamps):
        return None
    return FileIdentity(row["size_bytes"], *stamps)
