"""The QA stage on the real vLLM engine, run inside ``.venv-llm`` (as in the LLM image).

    .venv-llm/bin/python -m tests.support.vllm_qa_scenario <model_dir> <store_dir> <run_id> <out.json>
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.support.committed import Committed


def main(model_dir: str, store_dir: str, run_id: str, out_path: str) -> None:
    from glave_tasks.config import DEFAULT_TASKS, load_config
    from glave_tasks.errors import ShardFailed
    from glave_tasks.language import build_engine
    from glave_tasks.layout import RunLayout
    from glave_tasks.runner import run_stage
    from glave_tasks.stages.qa import QAStage
    from glave_tasks.store import ArtifactStore

    from .vllm_scenarios import CountingEngine

    config = load_config(environ={}, overrides={
        "store": {"root": store_dir, "local_cache": f"{store_dir}/../cache"},
        "run": {"max_failure_ratio": 1.0},  # a random model may fail every video; the test reads why
        "engine": {
            "backend": "vllm", "model": "tiny-qwen2-vl", "revision": "test-rev", "weights": model_dir,
            "dtype": "bfloat16", "max_model_len": 4096, "structured_retries": 1, "gpu_memory_utilization": 0.08, "cpu_kv_cache_gib": 1,
            "sampling": {"max_tokens": 160, "temperature": 0.0, "seed": 0},  # greedy: no seeded CPU generator
            # A random model: short budgets keep CPU decoding quick (real budgets are in DEFAULT_TASKS).
            "tasks": {task: {"max_tokens": 160} for task in DEFAULT_TASKS},
        },
    })
    engine = CountingEngine(build_engine(config.engine, cache_dir=config.store.local_cache))
    store = ArtifactStore(store_dir)
    result: dict[str, Any] = {}
    try:
        marker = run_stage(QAStage(config, engine=engine), store, run_id, 0, show_progress=False).marker
        result["qa"] = store.read_table(Committed(store, run_id).table("qa", 0, "qa")).to_pylist()
        result["errors"] = store.read_table(Committed(store, run_id).table("qa", 0, "errors")).to_pylist()
    except ShardFailed:
        marker = store.read_json(RunLayout(run_id).failed("qa", 0))
    result["marker"] = marker
    result["batches"] = engine.batches
    engine.close()
    with open(out_path, "w") as fh:
        json.dump(result, fh, default=str)


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main(*sys.argv[1:5])
