"""The Airflow route against one ``glave run``: the same videos, the same embedded default config,
wall time side by side in one run.

    .venv/bin/python bench/orchestration.py [--videos 2] [--loops 8] [--json out.json]

Inputs: the bundled Big Buck Bunny clip (Blender Foundation, CC BY 3.0) looped ``--loops`` times
at 640x360 (42 s for 8 loops), ``--videos`` copies with distinct bytes, one shard.
Routes, each on a fresh store, each a fresh process (so every route pays its own imports):
  glave run        ``glave run --mlflow`` (one process; discover, every stage, report, publish, MLflow)
  airflow          ``glave_nightly`` through real Airflow (``scripts/dag_test.py``: ``dag.test()``,
                   SQLite metadata, every task a local ``glave`` command) with the warm launcher,
                   started cold inside the measured time (tasks run fresh until it is ready)
  airflow, fresh   the same with ``orchestration.launcher: false`` (a fresh interpreter per task)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import ffmpeg_exe  # noqa: E402
from bench.pipeline import make_videos  # noqa: E402

BIN = Path(sys.executable).parent


def write_config(d: Path, name: str, launcher: bool) -> Path:
    cfg = d / name / "glave.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        f"store:\n  root: {d / name / 'store'}\n  local_cache: {d / name / 'cache'}\n"
        f"run:\n  shard_size: 100\n"
        f"orchestration:\n  executor: local\n  input_prefix: {d / 'inbox'}\n  aws_conn_id: null\n"
        f"  retries: 0\n  launcher: {str(launcher).lower()}\n"
        f"mlflow:\n  tracking_uri: sqlite:///{d / name / 'mlflow.db'}\n  artifact_location: {d / name / 'mlruns'}\n")
    return cfg


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    return time.perf_counter() - t0, rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--loops", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    ffmpeg = ffmpeg_exe()
    if ffmpeg is None:
        print("no ffmpeg: install the test extra (imageio-ffmpeg)", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="glave-bench-orch-") as tmp:
        d = Path(tmp)
        video_s = make_videos(ffmpeg, d, args.videos, args.loops)
        base = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags")}
        routes = [("glave run", "run", True), ("airflow", "airflow", True), ("airflow, fresh", "fresh", False)]
        for label, name, launcher in routes:
            cfg = write_config(d, name, launcher)
            env = {**base, "GLAVE_CONFIG": str(cfg), "AIRFLOW_HOME": str(d / name / "airflow"),
                   "GLAVE_LAUNCHER_DIR": str(d / name / "launcher")}  # a cold launcher, started in the timing
            if name == "run":
                # --mlflow: the same work as the DAG's mlflow_log task
                cmd = [str(BIN / "glave"), "run", "--input", str(d / "inbox"), "--run-id", "bench", "--mlflow", "--json"]
            else:
                subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                cmd = [str(BIN / "python"), str(ROOT / "scripts" / "dag_test.py"), "--conf", '{"reprocess": true}',
                       "--logical-date", "2026-01-02T00:00:00+00:00"]
            wall, rc = timed(cmd, env, d / f"{name}.log")
            results[label] = {"wall_s": wall, "rc": rc}
            print(f"{label:<16}{wall:8.1f} s  exit {rc}", flush=True)
            if rc != 0:
                print((d / f"{name}.log").read_text()[-3000:], file=sys.stderr)
        one = results["glave run"]["wall_s"]
        print(f"\n{args.videos} videos, {video_s * args.videos:.0f} video-s, one shard")
        for label in ("airflow", "airflow, fresh"):
            print(f"{label} / glave run: {results[label]['wall_s'] / one:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["rc"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
