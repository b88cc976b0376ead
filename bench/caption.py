"""Caption requests per second: one by one vs batched (in-process vLLM) vs the run's model server.

    .venv-llm/bin/python bench/caption.py [--requests 8] [--tokens 480] [--model DIR] [--json out.json]

Every request is shaped like the method's attention/differential calls: two 320x240 frames, the
keyframe's box JSON and an instruction, and decodes exactly ``--tokens`` tokens (``min_tokens`` =
``max_tokens``, so a random model cannot stop early): the method's outputs are ~430 (merged
keyframe captions) to ~600 (QA JSON per scene) tokens. Three ways to serve the same requests:

- one by one: one in-process ``LLM.chat`` call per request (the reference's call pattern);
- batched: every request in one ``LLM.chat`` call (what a stage does with one dependency level);
- server: ``vllm serve`` started through ``glave_tasks.language.model_server`` (as a run does) and
  the requests sent concurrently over HTTP by the ``openai`` client engine (what caption, bridge
  and qa do now); its start time is shown beside the in-process engine's.

Runs on a CPU machine as written (the KV cache is sized by ``VLLM_CPU_KVCACHE_SPACE``; no GPU
memory fraction is passed on CPU). Builds a tiny random Qwen2-VL-style model offline unless
``--model`` names one; the figures then measure the serving path, not a real model's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
    os.environ.setdefault(_name, "1")

PROMPT = ("You see the previous and the current keyframe of a video with numbered object marks, and the "
          "objects' boxes {boxes}. Describe in detail what changed between the two frames: actions of each "
          "object named by what it is followed by its (ID=n), camera motion, and new or vanished objects. "
          "Do not mention the marks, outlines or coordinates.")


def frames(tmp: Path, n: int) -> list[tuple[str, str]]:
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        pair = []
        for k in range(2):
            img = Image.new("RGB", (320, 240), (120 + 10 * k, 150, 140 + (i * 7) % 100))
            d = ImageDraw.Draw(img)
            d.rectangle([20 + 30 * k, 60, 90 + 30 * k, 130], fill=(200, 60, 40), outline=(255, 255, 255), width=2)
            d.text((25 + 30 * k, 65), "1", fill=(255, 255, 255))
            path = tmp / f"r{i}-{k}.jpg"
            img.save(path, quality=85)
            pair.append(str(path))
        out.append((pair[0], pair[1]))
    return out


def requests_for(pairs: list[tuple[str, str]], tokens: int) -> list[Any]:
    from glave_tasks.language.types import LLMRequest

    boxes = json.dumps({"1": {"x1": 20, "y1": 60, "x2": 90, "y2": 130}})
    return [LLMRequest(task="differential", prompt=PROMPT.format(boxes=boxes), images=list(p), key=i,
                       max_tokens=tokens) for i, p in enumerate(pairs)]


def in_process(model: str, reqs: list[Any], tokens: int, on_cpu: bool) -> dict[str, Any]:
    """One engine; the same requests one by one, then all in one call."""
    from vllm import LLM, SamplingParams

    from glave_tasks.compat.subprocesses import export_to_subprocesses
    from glave_tasks.language.engines.vllm import _content

    export_to_subprocesses()
    import torch

    if torch.version.cuda is None:
        from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()
    kwargs: dict[str, Any] = dict(model=model, tokenizer=model, dtype="bfloat16", max_model_len=4096, seed=0,
                                  limit_mm_per_prompt={"image": 2})
    if not on_cpu:
        kwargs["gpu_memory_utilization"] = 0.9
    t0 = time.perf_counter()
    llm = LLM(**kwargs)
    startup = time.perf_counter() - t0
    params = SamplingParams(temperature=0.8, max_tokens=tokens, min_tokens=tokens)
    messages = [[{"role": "user", "content": _content(r)}] for r in reqs]
    llm.chat(messages[:1], params, use_tqdm=False)  # warm-up
    t0 = time.perf_counter()
    one = [llm.chat([m], params, use_tqdm=False)[0] for m in messages]
    one_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = llm.chat(messages, params, use_tqdm=False)
    batch_s = time.perf_counter() - t0
    engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if engine_core is not None and hasattr(engine_core, "shutdown"):
        engine_core.shutdown()
    return {"startup_s": startup,
            "one_by_one": {"wall_s": one_s, "tokens": sum(len(o.outputs[0].token_ids) for o in one)},
            "batched": {"wall_s": batch_s, "tokens": sum(len(o.outputs[0].token_ids) for o in batch)}}


def server(model: str, reqs: list[Any], tokens: int, tmp: Path) -> dict[str, Any]:
    """The run's server, started as a run starts it; requests concurrently through the client engine."""
    from glave_tasks.config import load_config
    from glave_tasks.language import model_server as ms
    from glave_tasks.store import ArtifactStore

    config = load_config(environ={}, overrides={
        "store": {"root": str(tmp / "store"), "local_cache": str(tmp / "cache")},
        "engine": {"backend": "vllm", "model": "tiny-qwen2-vl", "weights": model, "dtype": "bfloat16",
                   "max_model_len": 4096, "max_images_per_prompt": 2, "concurrency": len(reqs),
                   "sampling": {"temperature": 0.8, "max_tokens": tokens, "seed": 0}},
        "model_server": {"python": sys.executable, "cpu_kv_cache_gib": int(os.environ["VLLM_CPU_KVCACHE_SPACE"])},
    })
    store = ArtifactStore(config.store.root)
    record = ms.start_local(config, store, "bench")
    try:
        engine = ms.connect(ms.attach(config, store, "bench"))
        # min_tokens (a vLLM extension of the OpenAI API) keeps every answer at its full length.
        attempt = engine._attempt
        engine._attempt = lambda kw, deadline: attempt({**kw, "extra_body": {"min_tokens": tokens}}, deadline)
        engine.generate(reqs[:1])  # warm-up
        t0 = time.perf_counter()
        out = engine.generate(reqs)
        wall = time.perf_counter() - t0
        errors = [r.error for r in out if r.error]
        engine.close()
    finally:
        ms.stop_local(store, "bench")
    return {"startup_s": record["startup_s"], "wall_s": wall, "tokens": sum(r.completion_tokens for r in out),
            "errors": errors, "engine_starts": record["engine_starts"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=480, help="tokens decoded per request (method: ~430-600)")
    ap.add_argument("--model", default=None, help="model folder (default: build a tiny random one)")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    on_cpu = shutil.which("nvidia-smi") is None
    tmp = Path(tempfile.mkdtemp(prefix="glave-bench-"))
    model = args.model
    if model is None:
        from tests.support.tiny_vlm import build_tiny_qwen2_vl

        model = str(build_tiny_qwen2_vl(tmp / "model"))
    reqs = requests_for(frames(tmp, args.requests), args.tokens)
    res = in_process(model, reqs, args.tokens, on_cpu)
    rows = {"one by one (in-process)": res["one_by_one"], "batched (in-process)": res["batched"]}
    srv = None if args.skip_server else server(model, reqs, args.tokens, tmp)
    if srv is not None:
        rows["server (concurrent HTTP)"] = srv
    print(f"\n{args.requests} caption-shaped requests (2 frames each), {args.tokens} tokens each, tiny random "
          f"Qwen2-VL on vLLM ({'CPU' if on_cpu else 'GPU'}, VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']})")
    print(f"engine start: in-process {res['startup_s']:.1f} s" + (f", server {srv['startup_s']:.1f} s" if srv else ""))
    base = args.requests / res["one_by_one"]["wall_s"]
    print(f"{'mode':<28}{'wall s':>9}{'req/s':>8}{'tok/s':>8}{'vs one by one':>15}")
    for name, r in rows.items():
        rps = args.requests / r["wall_s"]
        print(f"{name:<28}{r['wall_s']:>9.2f}{rps:>8.2f}{r['tokens'] / r['wall_s']:>8.0f}{rps / base:>14.1f}x")
    if srv and srv["errors"]:
        print(f"server errors: {srv['errors']}")
    if args.json:
        args.json.write_text(json.dumps({"requests": args.requests, "tokens": args.tokens, "in_process": res,
                                         "server": srv}, indent=2, default=str))


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main()
