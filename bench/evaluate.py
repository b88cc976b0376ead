"""Judge requests one by one vs batched, on the same engine.

    .venv-llm/bin/python bench/evaluate.py [--questions 16] [--repeats 3] [--model DIR] [--max-tokens 64]
    .venv/bin/python bench/evaluate.py --backend embedded

Builds a tiny random Qwen2-VL-style model offline (unless ``--model`` names one) and starts one
vLLM engine (or the embedded judge), then asks the same judge requests (hand-written test videos'
questions x repeats) twice: once each request alone in its own engine call (the reference
method's call pattern), once all of them in one batch. Prints requests per second for both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class CountingEngine:
    """Counts the engine's ``generate`` calls (structured retries included)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.calls = inner, 0
        self.generator, self.model_id, self.model_revision = inner.generator, inner.model_id, inner.model_revision

    def generate(self, requests: list) -> list:
        self.calls += 1
        return self.inner.generate(requests)


def items(n_questions: int) -> list:
    from glave_tasks.evaluation.judge import JudgeItem
    from glave_tasks.evaluation.questions import from_records
    from glave_tasks.quality.record_format import Record
    from tests.evaluation import stories

    records = [Record(s.video_id, stories.record(s)) for s in stories.STORIES]
    captions = {r.video_id: r.data["caption"] for r in records}
    qs = from_records(records)
    chosen = (qs.questions * (n_questions // len(qs.questions) + 1))[:n_questions]
    return [JudgeItem(q, captions[q.video_id], qs.scene_context(q)) for q in chosen]


def run_once(engine, judge_items: list, repeats: int, batch_size: int) -> dict:  # noqa: ANN001
    from glave_tasks.evaluation.judge import ask

    counting = CountingEngine(engine)
    started = time.perf_counter()
    votes = ask(counting, judge_items, repeats=repeats, structured_retries=2, batch_size=batch_size)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "requests": len(votes), "engine_calls": counting.calls,
            "unparsable": sum(v.letter is None for v in votes),
            "completion_tokens": sum(v.provenance.get("completion_tokens") or 0 for v in votes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("vllm", "embedded"), default="vllm")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=None, help="model folder (default: build a tiny random one)")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    from glave_tasks.config import JudgeConfig
    from glave_tasks.language import build_engine

    if args.backend == "vllm":
        model = args.model
        if model is None:
            from tests.support.tiny_vlm import build_tiny_qwen2_vl

            model = str(build_tiny_qwen2_vl(Path(tempfile.mkdtemp(prefix="glave-bench-")) / "model"))
        cfg = JudgeConfig(backend="vllm", model="tiny-qwen2-vl", weights=model, dtype="bfloat16", max_model_len=4096,
                          gpu_memory_utilization=0.08, cpu_kv_cache_gib=1, structured_retries=2,
                          sampling={"max_tokens": args.max_tokens, "temperature": 0.8})
    else:
        cfg = JudgeConfig(backend="embedded")
    started = time.perf_counter()
    engine = build_engine(cfg)
    startup = time.perf_counter() - started
    judge_items = items(args.questions)
    run_once(engine, judge_items[:2], 1, 64)  # warm-up: compile paths, caches, model load
    n = len(judge_items) * args.repeats
    seq = run_once(engine, judge_items, args.repeats, 1)
    bat = run_once(engine, judge_items, args.repeats, n)
    engine.close()

    print(f"\nJudge: {args.questions} questions x {args.repeats} repeats = {n} requests, {args.backend} "
          f"({engine.model_id}), max_tokens {args.max_tokens}; engine start {startup:.1f} s\n")
    print(f"{'mode':<32}{'requests':>9}{'engine calls':>14}{'wall s':>9}{'req/s':>8}{'tok/s':>8}{'unparsable':>12}")
    for name, r in (("one by one (reference)", seq), ("batched (one call per attempt)", bat)):
        print(f"{name:<32}{r['requests']:>9}{r['engine_calls']:>14}{r['wall_s']:>9.2f}"
              f"{r['requests'] / r['wall_s']:>8.1f}{r['completion_tokens'] / r['wall_s']:>8.0f}{r['unparsable']:>12}")
    print(f"\nspeed-up (wall time one by one / batched): {seq['wall_s'] / bat['wall_s']:.1f}x")


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main()
