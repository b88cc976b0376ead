"""caption + bridge + qa of one run through the run's model server vs the floor, side by side.

    .venv/bin/python bench/llm_stages.py [--json out.json] [--keep DIR]

Two videos (the synthetic fixtures the engine tests use: 10 s with a cut and three moving
objects, 4 s static) go through ingest and track once per side (not timed); then, timed:

- served: ``glave run --stages caption,bridge,qa`` as a separate process, exactly as a user runs
  it: the run starts one ``vllm serve`` of the tiny random Qwen2-VL model (``.venv-llm``), the
  three stages are its HTTP clients (main environment), the server is stopped at the end. Engine
  starts are read from the run's result and the server record, and counted again in the server's
  own log; MLflow's ``model_server.engine_starts`` metric is logged after the timing.
- floor: one ``.venv-llm`` process that starts one in-process vLLM engine and hands it to the
  same three stages (same config, same prompts, same retries): one engine start plus the same
  generation work, with no server, no HTTP and no second interpreter.

The random model stops at any special token (as in the engine tests), so answer lengths vary
between the sides: requests and completion tokens of both are printed beside the times. The target:
served wall within 1.3x of the floor's. On a 2-core machine run it alone.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ["caption", "bridge", "qa"]
KV_CACHE_GIB = 1
# What vLLM logs once per engine it builds (server or in-process).
ENGINE_START_LINE = "Initializing a V1 LLM engine"


def overrides(tmp: Path, model: Path, llm_python: str) -> dict[str, Any]:
    from glave_tasks.config import DEFAULT_TASKS

    return {
        "store": {"root": str(tmp / "store"), "local_cache": str(tmp / "cache")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_location": str(tmp / "mlruns")},
        "run": {"max_failure_ratio": 1.0},  # a random model may fail a video; both sides alike
        "engine": {"backend": "vllm", "model": "tiny-qwen2-vl", "revision": "bench", "weights": str(model),
                   "dtype": "bfloat16", "max_model_len": 4096, "max_images_per_prompt": 4,
                   "structured_retries": 2, "concurrency": 16,
                   "sampling": {"max_tokens": 200, "temperature": 0.8, "seed": 0},
                   "tasks": {task: {"max_tokens": 200} for task in DEFAULT_TASKS}},
        "model_server": {"python": llm_python, "cpu_kv_cache_gib": KV_CACHE_GIB, "startup_timeout_s": 900},
    }


def run_totals(store_root: str, run_id: str) -> dict[str, Any]:
    """Requests (from the commit markers) and completion tokens (from the tables) of the LLM stages."""
    import pyarrow.parquet as pq

    out: dict[str, Any] = {"requests": 0, "completion_tokens": 0, "videos_ok": 0, "videos_failed": 0}
    for stage in STAGES:
        for marker in sorted((Path(store_root) / "runs" / run_id / stage).glob("shard-*/_COMMIT.json")):
            m = json.loads(marker.read_text())
            out["requests"] += sum(int(v) for k, v in m.get("metrics", {}).items() if k.startswith("requests_"))
            out["videos_ok"] += len(m.get("videos_ok", []))
            out["videos_failed"] += int(m.get("videos_failed") or 0)
            for table in marker.parent.glob("*.parquet"):
                if "completion_tokens" in pq.read_schema(table).names:
                    out["completion_tokens"] += sum(x or 0 for x in pq.read_table(table, columns=["completion_tokens"])
                                                    .column(0).to_pylist())
    return out


# -- the floor, inside .venv-llm ------------------------------------------------------------------
class TimedEngine:
    """The engine the stages get: counts the seconds spent generating."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.generate_s, self.calls = inner, 0.0, 0
        self.generator, self.model_id, self.model_revision = inner.generator, inner.model_id, inner.model_revision

    def generate(self, requests: list[Any]) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return list(self.inner.generate(requests))
        finally:
            self.generate_s += time.perf_counter() - t0
            self.calls += 1

    def close(self) -> None:
        self.inner.close()


def floor(config_path: str, run_id: str, out_path: str) -> None:
    """One engine start, then caption, bridge and qa of every shard on that engine."""
    started = time.perf_counter()
    from glave_tasks.config import load_config
    from glave_tasks.language.engines.vllm import VLLMEngine
    from glave_tasks.run import Run
    from glave_tasks.runner import run_stage
    from glave_tasks.stages import build_stage
    from glave_tasks.store import ArtifactStore

    config = load_config(config_path)
    store = ArtifactStore(config.store.root)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.model_server.cpu_kv_cache_gib))
    imports_s = time.perf_counter() - started
    t0 = time.perf_counter()
    # As the server runs on CPU: the KV cache sized by VLLM_CPU_KVCACHE_SPACE, no memory fraction.
    extra: dict[str, Any] = {"gpu_memory_utilization": None} if config.model_server.device != "cuda" else {}
    engine = TimedEngine(VLLMEngine(config.engine, cache_dir=config.store.local_cache, **extra))
    engine_start_s = time.perf_counter() - t0
    stages_s: dict[str, float] = {}
    for name in STAGES:
        t0 = time.perf_counter()
        stage = build_stage(name, config)
        stage.engine = engine  # type: ignore[attr-defined]  # EngineStage: one engine for all three
        for shard in Run(store, run_id).shards:
            run_stage(stage, store, run_id, shard, show_progress=False)
        stages_s[name] = round(time.perf_counter() - t0, 2)
    engine.close()
    Path(out_path).write_text(json.dumps({"imports_s": imports_s, "engine_start_s": engine_start_s,
                                          "generate_s": engine.generate_s, "engine_calls": engine.calls,
                                          "stages_s": stages_s}))


# -- the bench, in the main environment -----------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    ap.add_argument("--floor", nargs=3, metavar=("CONFIG", "RUN_ID", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor:
        floor(*args.floor)
        return

    import yaml

    from glave_tasks.config import load_config
    from glave_tasks.language.model_server import read_record
    from glave_tasks.local_run import run_pipeline
    from glave_tasks.store import ArtifactStore
    from tests.support.llm_env import LLM_PYTHON, build_tiny_model, llm_env
    from tests.support.synthetic import static_video, two_shot_video

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="glave-bench-llm-"))
    tmp.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(tmp / "model")
    gen = json.loads((model / "generation_config.json").read_text())
    # A random model never samples its end token on purpose: any special token ends an answer.
    (model / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": list(range(7))}))
    inbox = tmp / "inbox"
    inbox.mkdir(exist_ok=True)
    two_shot_video(inbox / "a.mp4")
    static_video(inbox / "b.mp4", seconds=4.0)
    cfg_path = tmp / "glave.yaml"
    cfg_path.write_text(yaml.safe_dump(overrides(tmp, model, str(LLM_PYTHON))))
    config = load_config(str(cfg_path))
    store = ArtifactStore(config.store.root)
    for run_id in ("served", "floor"):  # the same upstream for both sides, not timed
        prep = run_pipeline(store, config, str(inbox), run_id, stages=["ingest", "track"], show_progress=False)
        assert not prep["failed"], prep["failed"]

    env = llm_env()
    env.pop("VLLM_LOGGING_LEVEL", None)  # the engine start line is logged at INFO
    # Each side compiles its model from an empty vLLM cache: neither reuses the other's
    # torch.compile artefacts, whichever runs first.
    cache_for = {side: str(tmp / f"vllm-cache-{side}") for side in ("served", "floor")}
    # (a) served: the user's command, one process, the server it starts.
    glave = str(Path(sys.executable).parent / "glave")
    t0 = time.perf_counter()
    proc = subprocess.run([glave, "run", "--input", str(inbox), "--run-id", "served", "--stages", ",".join(STAGES),
                           "--config", str(cfg_path), "--json"], cwd=ROOT, env={**env, "VLLM_CACHE_ROOT": cache_for["served"]},
                          capture_output=True, text=True)
    served_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"glave run exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    result = json.loads(proc.stdout)
    record = read_record(store, "served") or {}
    server_log = Path(record["log"]).read_text(errors="replace")
    served = {"wall_s": served_wall, "engine_starts": result["model_server"]["engine_starts"],
              "engine_starts_in_server_log": server_log.count(ENGINE_START_LINE),
              "server_startup_s": record.get("startup_s"),
              "stages_s": {o["stage"]: o["duration_s"] for o in result["outcomes"]},
              **run_totals(config.store.root, "served")}

    # (b) floor: one process, one in-process engine, the same three stages.
    out = tmp / "floor.json"
    t0 = time.perf_counter()
    proc = subprocess.run([str(LLM_PYTHON), str(Path(__file__).resolve()), "--floor", str(cfg_path), "floor", str(out)],
                          cwd=ROOT, capture_output=True, text=True,
                          env={**env, "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB), "VLLM_CACHE_ROOT": cache_for["floor"]})
    floor_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"floor exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    fl = {"wall_s": floor_wall, **json.loads(out.read_text()),
          "engine_starts": (proc.stdout + proc.stderr).count(ENGINE_START_LINE), **run_totals(config.store.root, "floor")}

    # After the timing: the run's MLflow record carries the engine start count.
    from mlflow import MlflowClient

    from glave_tasks.mlflow_log import log_run

    logged = log_run(store, config, "served")
    metrics = MlflowClient(tracking_uri=config.mlflow.tracking_uri).get_run(logged["mlflow_run_id"]).data.metrics
    served["mlflow_engine_starts"] = metrics.get("model_server.engine_starts")

    engine_only = fl["engine_start_s"] + fl["generate_s"]
    print(f"\ncaption+bridge+qa, 2 videos, tiny random Qwen2-VL on vLLM (CPU, VLLM_CPU_KVCACHE_SPACE={KV_CACHE_GIB}), "
          f"{os.cpu_count()} cores")
    print(f"{'side':<44}{'wall s':>8}{'starts':>8}{'requests':>10}{'tokens':>8}")
    print(f"{'(a) glave run through the run model server':<44}{served_wall:>8.1f}{served['engine_starts']:>8}"
          f"{served['requests']:>10}{served['completion_tokens']:>8}")
    print(f"{'(b) one process, one in-process engine':<44}{floor_wall:>8.1f}{fl['engine_starts']:>8}"
          f"{fl['requests']:>10}{fl['completion_tokens']:>8}")
    rest = served_wall - served["server_startup_s"] - sum(served["stages_s"].values())
    print(f"(a) server start {served['server_startup_s']:.1f} s; stages {served['stages_s']}; "
          f"rest (interpreter, imports, discover, server stop) {rest:.1f} s")
    print(f"(b) imports {fl['imports_s']:.1f} s, engine start {fl['engine_start_s']:.1f} s, generation "
          f"{fl['generate_s']:.1f} s in {fl['engine_calls']} calls; stages {fl['stages_s']}")
    print(f"engine starts (a): run result {served['engine_starts']}, server log {served['engine_starts_in_server_log']}, "
          f"MLflow model_server.engine_starts {served['mlflow_engine_starts']}")
    print(f"ratio (a)/(b) = {served_wall / floor_wall:.2f}x; (a)/(engine start + generation of b) = "
          f"{served_wall / engine_only:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"served": served, "floor": fl, "ratio": served_wall / floor_wall,
                                         "ratio_engine_only": served_wall / engine_only}, indent=2, default=str))


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main()
