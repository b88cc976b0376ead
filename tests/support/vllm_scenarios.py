"""Engine scenarios run inside ``.venv-llm`` (the main environment has no vLLM).

    .venv-llm/bin/python -m tests.support.vllm_scenarios <model_dir> <store_dir> <run_id> <out.json>

One engine is built through the config (``engine.backend: vllm``) and reused for every
scenario, because engine start costs tens of seconds on CPU. The results (structure, counts,
provenance; never the gibberish text itself) are written as JSON for the tests to assert on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Colour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=12)
    count: int = Field(ge=0, le=99)


class NeverValid(Colour):
    """Schema-valid JSON that a semantic check rejects: exercises retries and the final failure."""

    @field_validator("name")
    @classmethod
    def _reject(cls, v: str) -> str:
        raise ValueError("rejected on purpose")


class CountingEngine:
    """Wraps an engine and records the size of every batch it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.batches = inner, []
        self.generator, self.model_id, self.model_revision = inner.generator, inner.model_id, inner.model_revision

    def generate(self, requests: list) -> list:
        self.batches.append([r.task for r in requests])
        return self.inner.generate(requests)

    def close(self) -> None:
        self.inner.close()


def main(model_dir: str, store_dir: str, run_id: str, out_path: str) -> None:
    from PIL import Image

    from glave_tasks.config import DEFAULT_TASKS, load_config
    from glave_tasks.errors import ShardFailed
    from glave_tasks.language import LLMRequest, build_engine, complete
    from glave_tasks.layout import RunLayout
    from glave_tasks.runner import run_stage
    from glave_tasks.stages.bridge import BridgeStage
    from glave_tasks.stages.caption import CaptionStage
    from glave_tasks.store import ArtifactStore

    # A random model never samples its one end token on purpose: here every special token ends an
    # answer (~2% a step, ~55 tokens on average), so free-text answers finish within a 400-token
    # budget (a cut-off is ~0.03% per request) instead of being recorded as cut off.
    gen_path = Path(model_dir) / "generation_config.json"
    gen = json.loads(gen_path.read_text())
    gen_path.write_text(json.dumps({**gen, "eos_token_id": list(range(7))}))
    config = load_config(environ={}, overrides={
        "store": {"root": store_dir, "local_cache": f"{store_dir}/../cache"},
        "engine": {
            "backend": "vllm", "model": "tiny-qwen2-vl", "revision": "test-rev", "weights": model_dir,
            "dtype": "bfloat16", "max_model_len": 4096, "max_images_per_prompt": 4, "structured_retries": 2,
            # On CPU this is the share of host memory reserved for the KV cache.
            "gpu_memory_utilization": 0.08, "cpu_kv_cache_gib": 1, "sampling": {"max_tokens": 400, "temperature": 0.8, "seed": 0},
            # A random model: short budgets keep CPU decoding quick (real budgets are in DEFAULT_TASKS).
            "tasks": {task: {"max_tokens": 400} for task in DEFAULT_TASKS},
        },
    })
    results: dict[str, Any] = {}
    started = time.perf_counter()
    engine = CountingEngine(build_engine(config.engine, cache_dir=config.store.local_cache))
    results["startup_s"] = time.perf_counter() - started

    # 1. Image prompts and text prompts in one batch.
    red = Image.new("RGB", (96, 64), (200, 20, 20))
    reqs = [
        LLMRequest(task="t", prompt="Describe the image.", images=[red], prompt_version="t@1", key=0),
        LLMRequest(task="t", prompt="Describe the images.", images=[red, red.resize((64, 96))], key=1),
        LLMRequest(task="t", prompt="Describe the image.", key=2),
        LLMRequest(task="t", prompt="Describe the image.", max_tokens=5, key=3),
    ]
    out = engine.inner.generate(reqs)
    results["plain"] = [{"key": r.request.key, "ok": r.ok, "prompt_tokens": r.prompt_tokens,
                         "completion_tokens": r.completion_tokens, "text_len": len(r.text), "latency_s": r.latency_s,
                         **r.provenance()} for r in out]

    # 2. JSON-schema constrained answers, validated with pydantic, in one batch.
    engine.batches.clear()
    out = complete(engine, [LLMRequest(task="colour", prompt=f"Name a colour and a count ({i}).", key=i, max_tokens=128)
                            for i in range(6)], [Colour] * 6, structured_retries=2)
    results["structured"] = {"batches": engine.batches[:], "answers": [
        {"ok": r.ok, "error": r.error, "parsed": r.parsed.model_dump() if r.parsed else None, "text": r.text,
         "attempts": r.attempts} for r in out]}

    # 3. Answers that never validate: retried as one smaller batch each time, then failed.
    engine.batches.clear()
    mixed = [Colour, NeverValid, Colour, NeverValid]
    out = complete(engine, [LLMRequest(task="colour", prompt="Name a colour.", key=i, max_tokens=128) for i in range(4)], mixed,
                   structured_retries=2)
    results["retries"] = {"batches": engine.batches[:], "answers": [
        {"ok": r.ok, "error": r.error, "attempts": r.attempts, "completion_tokens": r.completion_tokens}
        for r in out]}

    # 4. The caption and bridge stages over the seeded shard, sharing the one engine.
    store = ArtifactStore(store_dir)
    engine.batches.clear()
    caption = run_stage(CaptionStage(config, engine=engine), store, run_id, 0, show_progress=False)
    caption_batches = engine.batches[:]
    engine.batches.clear()
    try:
        bridge_marker = run_stage(BridgeStage(config, engine=engine), store, run_id, 0, show_progress=False).marker
    except ShardFailed:  # keep what the failure marker says, for the test to show
        bridge_marker = store.read_json(RunLayout(run_id).failed("bridge", 0))
    results["stages"] = {"caption": caption.marker, "bridge": bridge_marker, "caption_batches": caption_batches,
                         "bridge_batches": engine.batches[:]}
    engine.close()
    with open(out_path, "w") as fh:
        json.dump(results, fh, default=str)


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main(*sys.argv[1:5])
