"""Caption + bridge requests one by one vs batched by dependency level, on the same engine.

    .venv-llm/bin/python bench/caption.py [--videos 4] [--keyframes 6] [--model DIR]

Builds a tiny random Qwen2-VL-style model offline (unless ``--model`` names one), starts one vLLM
engine, and runs the same shard of synthetic videos through CaptionBridge twice: once with every
request sent alone (the reference method's call pattern) and once with each dependency level of
the whole shard in one engine call. Prints both, the speed-up, and the request counts per video
next to the reference method's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_videos(tmp: Path, n_videos: int, n_keyframes: int) -> list:
    """Videos with moving boxes and one shot cut halfway; frames drawn with PIL (no video decode)."""
    from PIL import Image, ImageDraw

    from glave_tasks.language.video_facts import KeyframeFacts, VideoFacts

    videos = []
    w, h = 320, 240
    for v in range(n_videos):
        cut = n_keyframes // 2
        kfs = []
        for k in range(n_keyframes):
            boxes = {1: {"x1": 20.0 + 25 * k, "y1": 60.0, "x2": 70.0 + 25 * k, "y2": 100.0}}
            if k < cut:
                boxes[2] = {"x1": 200.0, "y1": 10.0 + 15 * k, "x2": 244.0, "y2": 54.0 + 15 * k}
            paths = []
            for marked in (False, True):
                img = Image.new("RGB", (w, h), (180 - 20 * (k >= cut), 180, 170 + v))
                draw = ImageDraw.Draw(img)
                for tid, b in boxes.items():
                    draw.rectangle([b["x1"], b["y1"], b["x2"], b["y2"]], fill=(200, 40 * tid, 40))
                    if marked:
                        draw.rectangle([b["x1"], b["y1"], b["x2"], b["y2"]], outline=(255, 255, 255), width=2)
                        draw.text((b["x1"] + 5, b["y1"] + 5), str(tid), fill=(255, 255, 255))
                path = tmp / f"v{v}-k{k}-{int(marked)}.jpg"
                img.save(path, quality=85)
                paths.append(str(path))
            kfs.append(KeyframeFacts(k, 2.0 * k, int(k >= cut), paths[0], paths[1], w, h, boxes))
        videos.append(VideoFacts(f"video{v}", 2.0 * n_keyframes, w, h, kfs, {1: "box", 2: "disc"}, [cut]))
    return videos


class CountingEngine:
    """Counts the engine's ``generate`` calls (structured retries included)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0
        self.generator, self.model_id, self.model_revision = inner.generator, inner.model_id, inner.model_revision

    def generate(self, requests: list) -> list:
        self.calls += 1
        return self.inner.generate(requests)


def run_once(engine, videos, batched: bool, retries: int, cap: int) -> dict:
    from glave_tasks.captionbridge.pipeline import bridge_shard, caption_shard
    from glave_tasks.language.levels import LevelRunner

    engine = CountingEngine(engine)
    runner = LevelRunner(engine, structured_retries=retries, batched=batched, answer_token_cap=cap)
    started = time.perf_counter()
    overview_rows, local_rows = caption_shard(videos, runner, max_images=4)
    alive = runner.alive(videos)
    merged = {v.video_id: [r["text"] for r in local_rows if r["video_id"] == v.video_id and r["stream"] == "merged"]
              for v in alive}
    scene_rows, video_rows = bridge_shard(alive, {r["video_id"]: r["overview_caption"] for r in overview_rows},
                                          merged, runner)
    wall = time.perf_counter() - started
    tokens = sum(r["completion_tokens"] or 0 for r in [*overview_rows, *local_rows, *scene_rows])
    return {"wall_s": wall, "requests": sum(runner.requests_per_task.values()), "engine_calls": engine.calls,
            "per_task": dict(runner.requests_per_task), "failed": len(runner.failures),
            "scenes": len(scene_rows), "completion_tokens": tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--keyframes", type=int, default=6)
    ap.add_argument("--model", default=None, help="model folder (default: build a tiny random one)")
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()

    from glave_tasks.config import EngineConfig
    from glave_tasks.language import build_engine

    tmp = Path(tempfile.mkdtemp(prefix="glave-bench-"))
    model = args.model
    if model is None:
        from tests.support.tiny_vlm import build_tiny_qwen2_vl

        model = str(build_tiny_qwen2_vl(tmp / "model"))
    cfg = EngineConfig(backend="vllm", model="tiny-qwen2-vl", weights=model, dtype="bfloat16", max_model_len=4096,
                       max_images_per_prompt=4, gpu_memory_utilization=0.08, structured_retries=2,
                       sampling={"max_tokens": args.max_tokens, "temperature": 0.8, "seed": 0})
    started = time.perf_counter()
    engine = build_engine(cfg)
    startup = time.perf_counter() - started
    videos = synthetic_videos(tmp, args.videos, args.keyframes)
    run_once(engine, videos[:1], True, 2, 2048)  # warm-up: compile paths, caches
    seq = run_once(engine, videos, False, 2, 2048)
    bat = run_once(engine, videos, True, 2, 2048)
    engine.close()

    print(f"\nCaptionBridge on {args.videos} videos x {args.keyframes} keyframes, tiny random Qwen2-VL on vLLM "
          f"(CPU), max_tokens {args.max_tokens}; engine start {startup:.1f} s\n")
    print(f"{'mode':<28}{'requests':>9}{'engine calls':>14}{'wall s':>9}{'req/s':>8}{'tok/s':>8}{'failed':>8}")
    for name, r in (("one by one (reference)", seq), ("batched by dependency level", bat)):
        print(f"{name:<28}{r['requests']:>9}{r['engine_calls']:>14}{r['wall_s']:>9.2f}"
              f"{r['requests'] / r['wall_s']:>8.1f}{r['completion_tokens'] / r['wall_s']:>8.0f}{r['failed']:>8}")
    print(f"\nspeed-up (wall time one by one / batched): {seq['wall_s'] / bat['wall_s']:.1f}x")

    k, scenes = args.keyframes, bat["scenes"] / max(args.videos - bat["failed"], 1)
    ours = bat["requests"] / args.videos
    ref = 1 + 3 * k + 1 + scenes  # overview, ~3 per keyframe, scene split, one per scene
    print("\nrequests per video (QA calls, made by the qa stage, not included):")
    print(f"{'task':<16}{'this system':>12}{'reference':>11}")
    for task, refn in (("overview", 1), ("attention", k), ("differential", k), ("merge", k), ("scene_split", 1),
                       ("scene_caption", scenes)):
        print(f"{task:<16}{bat['per_task'].get(task, 0) / args.videos:>12.1f}{refn:>11.1f}")
    print(f"{'total':<16}{ours:>12.1f}{ref:>11.1f}")
    print(f"\nengine round trips per shard of {args.videos}: {bat['engine_calls']} batched vs "
          f"{seq['engine_calls']} one by one (retries included)")


if __name__ == "__main__":  # vLLM starts its engine core with spawn: the guard is required
    main()
