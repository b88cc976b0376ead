"""The whole default pipeline on real footage: video-seconds per wall-second, each stage's share,
and one shard against one shard per video.

    .venv/bin/python bench/pipeline.py [--videos 6] [--loops 16] [--shards-too] [--json out.json]

Inputs: the bundled Big Buck Bunny clip (Blender Foundation, CC BY 3.0) looped ``--loops`` times and
re-encoded at 640x360 (85 s for 16 loops), ``--videos`` copies with distinct bytes. Runs
``glave run`` (``run_pipeline``: discover, every stage per shard, report, publish) with the
embedded default config (rules engine, classical tracker), once with every video in one shard and,
with ``--shards-too``, once with one shard per video, each in a fresh process. A stage's time is
its wall-clock span over the shards, from the commit markers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import ffmpeg_exe  # noqa: E402
from glave_tasks.config import load_config  # noqa: E402
from glave_tasks.local_run import run_pipeline  # noqa: E402
from glave_tasks.store import ArtifactStore  # noqa: E402


def make_videos(ffmpeg: str, d: Path, n: int, loops: int) -> float:
    src = ROOT / "tests" / "data" / "bigbuckbunny.mp4"
    base = d / "base.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", "-stream_loop", str(loops - 1), "-i", str(src), "-an",
                    "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", str(base)],
                   check=True)
    inbox = d / "inbox"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"v{i}.mp4").write_bytes(base.read_bytes() + bytes([i]))  # distinct bytes: distinct videos
    return loops * 5.3


def one_run(d: Path, name: str, shard_size: int) -> dict[str, Any]:
    config = load_config(environ={}, overrides={
        "store": {"root": str(d / name / "store"), "local_cache": str(d / name / "cache")},
        "run": {"shard_size": shard_size},
    })
    store = ArtifactStore(config.store.root)
    t0 = time.perf_counter()
    result = run_pipeline(store, config, str(d / "inbox"), name, show_progress=False)
    wall = time.perf_counter() - t0
    # A stage's time is its wall-clock span over the shards (shards may run side by side).
    spans: dict[str, list[float]] = {}
    video_s = 0.0  # from the ingest markers
    for o in result["outcomes"]:
        marker = store.read_json(f"runs/{name}/{o['stage']}/shard-{o['shard']:05d}/_COMMIT.json")
        start = datetime.fromisoformat(marker["started_at"]).timestamp()
        end = datetime.fromisoformat(marker["finished_at"]).timestamp()
        span = spans.setdefault(o["stage"], [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        if o["stage"] == "ingest":
            video_s += marker["metrics"].get("video_seconds", 0.0)
    stages = {stage: end - start for stage, (start, end) in spans.items()}
    return {"wall_s": wall, "video_s": video_s, "stages_s": stages, "shards": len(result["shards"]),
            "failed": result["failed"], "published": bool(result.get("published"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--loops", type=int, default=16)
    ap.add_argument("--shards-too", action="store_true", help="also run with one shard per video")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=3, metavar=("DIR", "NAME", "SHARD_SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one measured run, in a process of its own
        d, name, size = args.child
        print(json.dumps(one_run(Path(d), name, int(size))))
        return 0
    ffmpeg = ffmpeg_exe()
    if ffmpeg is None:
        print("no ffmpeg: install the test extra (imageio-ffmpeg)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="glave-bench-") as tmp:
        d = Path(tmp)
        make_videos(ffmpeg, d, args.videos, args.loops)
        # Each configuration in a fresh process: none inherits the other's imports or models.
        plan = [("1 shard", "one-shard", args.videos)] + ([(f"{args.videos} shards", "many-shards", 1)] if args.shards_too else [])
        runs = {}
        for label, name, size in plan:
            out = subprocess.run([sys.executable, __file__, "--child", str(d), name, str(size)], check=True,
                                 stdout=subprocess.PIPE, text=True).stdout
            runs[label] = json.loads(out.strip().splitlines()[-1])
    for name, r in runs.items():
        total = sum(r["stages_s"].values())
        print(f"\n{name}: {r['video_s']:.0f} video-s in {r['wall_s']:.1f} s wall = "
              f"{r['video_s'] / r['wall_s']:.2f} video-seconds per wall-second "
              f"(failed: {r['failed'] or 'none'}, published: {r['published']})")
        for stage, secs in r["stages_s"].items():
            print(f"  {stage:<10}{secs:8.1f} s {100 * secs / r['wall_s']:6.1f}% of the run")
        print(f"  {'other':<10}{r['wall_s'] - total:8.1f} s (discover, report, publish, process start)")
    if len(runs) == 2:
        a, b = runs.values()
        print(f"\n{args.videos} shards / 1 shard wall time: {b['wall_s'] / a['wall_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
