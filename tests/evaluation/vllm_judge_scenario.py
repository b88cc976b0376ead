"""The judge on the real vLLM engine (tiny random Qwen2-VL-style model), run inside ``.venv-llm``:

    .venv-llm/bin/python -m tests.evaluation.vllm_judge_scenario <model_dir> <work_dir> <out.json>

The engine is built from ``evaluate.judge`` (backend vllm) and reused for every scenario. Results
(batch sizes, votes, scores; never judged for quality: the model is random) go to a JSON file.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


class CountingEngine:
    """Records every batch; ``max_tokens`` caps each request (a judge that runs out of tokens)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.batches, self.max_tokens = inner, [], None
        self.generator, self.model_id, self.model_revision = inner.generator, inner.model_id, inner.model_revision

    def generate(self, requests: list) -> list:
        self.batches.append(len(requests))
        if self.max_tokens is not None:
            requests = [replace(r, max_tokens=self.max_tokens) for r in requests]
        return self.inner.generate(requests)

    def close(self) -> None:
        self.inner.close()


def main(model_dir: str, work: str, out: str) -> None:
    from glave_tasks.config import load_config
    from glave_tasks.evaluation.judge import JudgeItem, ask
    from glave_tasks.evaluation.pipeline import evaluate
    from glave_tasks.evaluation.questions import from_records
    from glave_tasks.language import build_engine
    from glave_tasks.quality.record_format import Record
    from glave_tasks.store import ArtifactStore
    from tests.evaluation import stories

    config = load_config(environ={}, overrides={
        "store": {"root": f"{work}/store", "local_cache": f"{work}/cache"},
        "evaluate": {"batch_size": 32, "judge": {
            "backend": "vllm", "model": "tiny-qwen2-vl", "revision": "test-rev", "weights": model_dir,
            "dtype": "bfloat16", "max_model_len": 4096, "gpu_memory_utilization": 0.08, "cpu_kv_cache_gib": 1, "structured_retries": 2,
            "sampling": {"max_tokens": 400, "temperature": 0.8}}},
    })
    started = time.perf_counter()
    engine = CountingEngine(build_engine(config.evaluate.judge, cache_dir=config.store.local_cache))
    results: dict[str, Any] = {"startup_s": time.perf_counter() - started}
    picked = stories.STORIES[:2]
    qs = from_records([Record(s.video_id, stories.record(s)) for s in picked])
    items = [JudgeItem(q, next(s.caption for s in picked if s.video_id == q.video_id), qs.scene_context(q))
             for q in qs.questions]

    # 1. 16 questions x 3 repeats = 48 requests in batches of 32: two engine calls, then retries.
    votes = ask(engine, items, repeats=3, structured_retries=2, batch_size=32)
    results["batched"] = {"batches": engine.batches[:], "votes": [
        {"question_id": v.item.question.question_id, "repeat": v.repeat, "letter": v.letter, "error": v.error,
         "attempts": v.attempts, "text": v.text, **v.provenance} for v in votes]}

    # 2. A judge that runs out of tokens: nothing parses; retried as a batch twice, then recorded.
    engine.batches.clear()
    engine.max_tokens = 3
    votes = ask(engine, items[:4], repeats=2, structured_retries=2, batch_size=32)
    results["truncated"] = {"batches": engine.batches[:], "votes": [
        {"letter": v.letter, "error": v.error, "attempts": v.attempts, "completion_tokens": v.provenance["completion_tokens"]}
        for v in votes]}
    engine.max_tokens = None

    # 3. The whole evaluation on the same engine: records' own QA, tables and summary.
    engine.batches.clear()
    records = stories.write_records(Path(work) / "records", picked)
    summary = evaluate(ArtifactStore(config.store.root), config, records=str(records), out=f"{work}/out", engine=engine)
    results["evaluate"] = {"batches": engine.batches[:], "summary": summary}
    engine.close()
    Path(out).write_text(json.dumps(results, default=str))


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main(*sys.argv[1:4])
