"""Ingest throughput (video-seconds per wall-second) next to decode-only baselines.

    .venv/bin/python bench/ingest.py [--repeat 3] [--long-seconds 60] [--json out.json]

Files: the synthetic two-shot (10 s, 320x240, 10 fps) and static (4 s) videos, the Big Buck Bunny
clip (5.3 s, 1280x720, 25 fps, H.264) and a longer synthetic video (60 s, 640x360, 25 fps).
Columns: PyAV decode-only (same threading as ingest, no pixel conversion), ``ffmpeg -i F -f
null -`` when an ffmpeg binary is on PATH, and the real ingest pass (decode, cut detection,
dense JPEGs written to a local store, histogram keyframes). Ratios are ingest / baseline
throughput. Best of ``--repeat`` runs: the build machines are shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from glave_tasks.config import load_config  # noqa: E402
from glave_tasks.discover import discover  # noqa: E402
from glave_tasks.media.scan import scan_video  # noqa: E402
from glave_tasks.media.similarity import HistogramSimilarity  # noqa: E402
from glave_tasks.runner import run_stage  # noqa: E402
from glave_tasks.stages import build_stage  # noqa: E402
from glave_tasks.store import ArtifactStore  # noqa: E402
from tests import synthetic  # noqa: E402


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def ffmpeg_null(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"], check=True)


def make_inputs(d: Path, long_seconds: float) -> list[Path]:
    synthetic.two_shot_video(d / "two_shot.mp4")
    synthetic.static_video(d / "static.mp4")
    shutil.copy(ROOT / "tests" / "data" / "bigbuckbunny.mp4", d / "bigbuckbunny.mp4")
    synthetic.long_video(d / "long_640x360.mp4", seconds=long_seconds)
    return [d / "two_shot.mp4", d / "static.mp4", d / "bigbuckbunny.mp4", d / "long_640x360.mp4"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = ap.parse_args()
    have_ffmpeg = shutil.which("ffmpeg") is not None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="glave-bench-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "in").mkdir()
        files = make_inputs(tmpd / "in", args.long_seconds)
        config = load_config(environ={}, overrides={
            "store": {"root": str(tmpd / "store"), "local_cache": str(tmpd / "cache")},
            "run": {"shard_size": 64},
        })
        store = ArtifactStore(config.store.root)
        backend = HistogramSimilarity()
        for path in files:
            dec_s, frames = best_of(args.repeat, lambda: decode_only(path))

            def ingest_once() -> Any:
                return scan_video(path, config.ingest, backend,
                                  lambda data, i: store.write_bytes(f"bench/{path.stem}/f{i:06d}.jpg", data))

            ing_s, result = best_of(args.repeat, ingest_once)
            ff_s = best_of(args.repeat, lambda: ffmpeg_null(path))[0] if have_ffmpeg else None
            video_s = result.duration_s
            rows.append({
                "file": path.name, "resolution": f"{result.probe.width}x{result.probe.height}",
                "video_s": video_s, "frames": frames, "keyframes": len(result.keyframes), "cuts": len(result.cuts),
                "decode_only_x": video_s / dec_s, "ffmpeg_null_x": (video_s / ff_s) if ff_s else None,
                "ingest_x": video_s / ing_s, "ingest_fps": frames / ing_s,
            })
        # The whole stage over the shard (all files), as a pod runs it.
        discover(store, config, str(tmpd / "in"), "bench")
        t0 = time.perf_counter()
        outcome = run_stage(build_stage("ingest", config), store, "bench", 0, show_progress=False)
        stage_s = time.perf_counter() - t0
        total_video_s = outcome.marker["metrics"]["video_seconds"]

    header = f"{'file':<20} {'size':>9} {'video s':>8} {'frames':>6} {'kf':>3} {'cuts':>4} " \
             f"{'decode x':>9} {'ffmpeg x':>9} {'ingest x':>9} {'ingest/decode':>13} {'ingest/ffmpeg':>13}"
    print(header)
    print("-" * len(header))
    for r in rows:
        ff = f"{r['ffmpeg_null_x']:9.1f}" if r["ffmpeg_null_x"] else f"{'n/a':>9}"
        ratio_ff = f"{r['ingest_x'] / r['ffmpeg_null_x']:13.2f}" if r["ffmpeg_null_x"] else f"{'n/a':>13}"
        print(f"{r['file']:<20} {r['resolution']:>9} {r['video_s']:8.2f} {r['frames']:6d} {r['keyframes']:3d} "
              f"{r['cuts']:4d} {r['decode_only_x']:9.1f} {ff} {r['ingest_x']:9.1f} "
              f"{r['ingest_x'] / r['decode_only_x']:13.2f} {ratio_ff}")
    print(f"\nwhole ingest stage, one shard of {len(rows)} videos: {total_video_s:.1f} video-s in {stage_s:.2f} s "
          f"= {total_video_s / stage_s:.1f}x real time (throughput in video-seconds per wall-second)")
    if not have_ffmpeg:
        print("ffmpeg: not on PATH; PyAV decode-only is the baseline")
    if args.json:
        args.json.write_text(json.dumps({"files": rows, "stage": {"video_s": total_video_s, "wall_s": stage_s}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
