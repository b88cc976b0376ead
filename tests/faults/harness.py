"""Shared pieces of the fault-injection scenarios: the night's inputs, ``glave`` in a subprocess
(optionally killed mid-stage), and snapshots of what readers can see (an export, a stage's
committed shard), with the few fields that legitimately differ between runs (wall-clock
latencies and timestamps) left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.support import ROOT, synthetic
from tests.support.committed import Committed, same_attempt

VOLATILE = {"latency_s", "recorded_at", "created_at", "started_at", "finished_at", "duration_s"}


def make_inbox(folder: Path) -> dict[str, str]:
    """One good short video and one corrupt file: name -> expected fate."""
    folder.mkdir(parents=True, exist_ok=True)
    synthetic.static_video(folder / "a_static.mp4", seconds=2.0)
    synthetic.corrupt_file(folder / "b_corrupt.mp4")
    return {"a_static.mp4": "published", "b_corrupt.mp4": "corrupt"}


def glave_subprocess(args: list[str], *, kill_stage: str | None = None, env: dict[str, str] | None = None,
                     timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tests.faults.kill_at", kill_stage, "--", *args] if kill_stage else \
        [sys.executable, "-m", "glave_tasks.cli", *args]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def glave_popen(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "glave_tasks.cli", *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: same_attempt(v) for k, v in r.items() if k not in VOLATILE} for r in table.to_pylist()]


def export_snapshot(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """What the published dataset of a run holds: records byte for byte, tables row for row."""
    prefix = f"published/{run_id}"
    keys = store.list(prefix)
    out: dict[str, Any] = {"files": sorted(k[len(prefix) + 1:] for k in keys)}
    for key in keys:
        rel = key[len(prefix) + 1:]
        if rel.startswith("json/"):
            out[rel] = store.read_bytes(key)
        elif rel.endswith(".parquet"):
            out[rel] = _rows(pq.read_table(pa.BufferReader(store.read_bytes(key))))
        elif rel.endswith(".json"):
            out[rel] = {k: v for k, v in json.loads(store.read_bytes(key)).items() if k not in VOLATILE}
    return out


def shard_snapshot(store: ArtifactStore, run_id: str, stage: str, shard: int = 0) -> dict[str, Any]:
    """Everything a reader can see of a committed stage shard: tables, files, the marker's facts."""
    prefix = Committed(store, run_id).prefix(stage, shard)
    out: dict[str, Any] = {}
    for key in store.list(prefix):
        rel = key[len(prefix) + 1:]
        if rel.endswith(".parquet"):
            out[rel] = _rows(pq.read_table(pa.BufferReader(store.read_bytes(key))))
        else:
            out[rel] = store.read_bytes(key)
    m = store.read_json(RunLayout(run_id).commit(stage, shard))
    out["_COMMIT.json"] = {k: m[k] for k in ("fingerprint", "videos_ok", "videos_in", "failures", "counts")}
    return out


def leftovers(store: ArtifactStore, run_id: str) -> list[str]:
    """Failure markers next to commits, or partial shards without a commit: what a clean run never leaves."""
    keys = set(store.list(RunLayout(run_id).prefix))
    bad = [k for k in keys if k.endswith("/_FAILED.json")]
    # runs/<run>/<stage>/shard-<k>/<table or marker>: a shard with data must have its commit.
    shard_dirs = {k.rsplit("/", 1)[0] for k in keys
                  if len(k.split("/")) == 5 and k.split("/")[3].startswith("shard-") and k.split("/")[2] != "_leases"}
    bad += [d for d in shard_dirs if f"{d}/_COMMIT.json" not in keys]
    return sorted(bad)
