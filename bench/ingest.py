"""Ingest throughput (video-seconds per wall-second) on real footage, beside ffmpeg's and PyAV's
decode of the same files.

    .venv/bin/python bench/ingest.py [--repeat 5] [--loops 16] [--videos 4] [--json out.json]

Files: the bundled Big Buck Bunny clip (5.3 s, 1280x720, 25 fps, H.264; Blender Foundation, CC BY
3.0) played ``--loops`` times into one file (stream copy, 1280x720) and re-encoded at 640x360 (the
size of the method's source videos), so the decoder sees real, varied content for 85 s.
Columns: ``ffmpeg -i F -f null -`` (the ffmpeg binary the ``imageio-ffmpeg`` wheel ships, or one
on PATH), PyAV decode-only (the decoder threads ingest gives the file, no pixel conversion), and
the ingest pass (decode, cut detection on the downscaled stream, dense JPEGs, keyframe selection). Ratios are
ingest time / baseline time (lower is better; 1.0 = as fast as decoding alone). Then the whole
ingest stage over ``--videos`` such files in one shard, as a pod runs it (per-video process pool
sized by the stage's CPUs). The three per-file sides run in turn, once per round, for ``--repeat``
rounds: times are each side's best, and "paired" is the median over rounds of ingest/ffmpeg within
a round (the build machines are shared; a slow moment hits both sides of a round).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from glave_tasks import backends  # noqa: E402
from glave_tasks.config import load_config  # noqa: E402
from glave_tasks.discover import discover  # noqa: E402
from glave_tasks.media.scan import CODEC_THREADS_MIN_PIXELS, scan_video  # noqa: E402
from glave_tasks.parallel import cpu_workers  # noqa: E402
from glave_tasks.runner import run_stage  # noqa: E402
from glave_tasks.stages import build_stage  # noqa: E402
from glave_tasks.store import ArtifactStore  # noqa: E402


def interleaved(repeat: int, fns: dict[str, Callable[[], Any]]) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Each function once per round, in turn, for ``repeat`` rounds: the sides share the machine's
    moods (a busy neighbour, a warm page cache) instead of each having rounds of its own."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return times, results


def decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.width * stream.codec_context.height >= CODEC_THREADS_MIN_PIXELS:
            stream.thread_type = "AUTO"  # as ingest decodes the file
        return sum(1 for _ in container.decode(stream))


def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except ImportError:
        return shutil.which("ffmpeg")


def ffmpeg_null(ffmpeg: str, path: Path) -> None:
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"], check=True)


def make_inputs(ffmpeg: str, d: Path, loops: int) -> list[Path]:
    """Real footage of a useful length: the bundled clip looped, as-is and at 640x360."""
    src = ROOT / "tests" / "data" / "bigbuckbunny.mp4"
    hd, sd = d / f"bbb_1280x720_x{loops}.mp4", d / f"bbb_640x360_x{loops}.mp4"
    loop = ["-stream_loop", str(loops - 1), "-i", str(src), "-an"]
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", *loop, "-c:v", "copy", str(hd)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", *loop, "-vf", "scale=640:360", "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "23", str(sd)], check=True)
    return [sd, hd]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--loops", type=int, default=16, help="plays of the 5.3 s clip per file (16: 85 s)")
    ap.add_argument("--videos", type=int, default=4, help="640x360 files in the whole-stage shard")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = ap.parse_args()
    ffmpeg = ffmpeg_exe()
    if ffmpeg is None:
        print("no ffmpeg: install the test extra (imageio-ffmpeg) or put ffmpeg on PATH", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="glave-bench-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "files").mkdir()
        files = make_inputs(ffmpeg, tmpd / "files", args.loops)
        config = load_config(environ={}, overrides={
            "store": {"root": str(tmpd / "store"), "local_cache": str(tmpd / "cache")},
            "run": {"shard_size": 64},
        })
        store = ArtifactStore(config.store.root)
        backend = backends.load("similarity", config.ingest.similarity_backend).from_config(config)
        for path in files:
            def ingest_once(path: Path = path) -> Any:
                return scan_video(path, config.ingest, backend,
                                  lambda data, i: store.write_bytes(f"bench/{path.stem}/f{i:06d}.jpg", data))

            times, results = interleaved(args.repeat, {
                "ffmpeg": functools.partial(ffmpeg_null, ffmpeg, path),
                "pyav": functools.partial(decode_only, path),
                "ingest": ingest_once,
            })
            result, frames = results["ingest"], results["pyav"]
            ff_s, dec_s, ing_s = (min(times[k]) for k in ("ffmpeg", "pyav", "ingest"))
            # The median of the per-round ratios: each round's sides ran back to back.
            paired = statistics.median(a / b for a, b in zip(times["ingest"], times["ffmpeg"], strict=True))
            rows.append({
                "file": path.name, "resolution": f"{result.probe.width}x{result.probe.height}",
                "video_s": result.duration_s, "frames": frames, "keyframes": len(result.keyframes),
                "cuts": len(result.cuts), "ffmpeg_s": ff_s, "pyav_decode_s": dec_s, "ingest_s": ing_s,
                "ingest_over_ffmpeg_paired_median": paired, "rounds": times,
            })
        # The whole stage over one shard of 640x360 copies (distinct bytes: distinct videos).
        inbox = tmpd / "in"
        inbox.mkdir()
        for i in range(args.videos):
            data = files[0].read_bytes() + bytes([i])  # a trailing byte makes each a different file
            (inbox / f"v{i}.mp4").write_bytes(data)
        discover(store, config, str(inbox), "bench")
        t0 = time.perf_counter()
        outcome = run_stage(build_stage("ingest", config), store, "bench", 0, show_progress=False)
        stage_s = time.perf_counter() - t0
        total_video_s = outcome.marker["metrics"].get("video_seconds", 0.0)
        failed = outcome.marker["videos_failed"]
        workers = cpu_workers(build_stage("ingest", config).resources())

    header = (f"{'file':<22} {'size':>9} {'video s':>8} {'frames':>6} {'kf':>3} {'cuts':>4} {'ffmpeg s':>9} "
              f"{'pyav s':>7} {'ingest s':>9} {'ingest/ffmpeg':>14} {'paired':>7} {'ingest/pyav':>12} {'ingest x':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['file']:<22} {r['resolution']:>9} {r['video_s']:8.1f} {r['frames']:6d} {r['keyframes']:3d} "
              f"{r['cuts']:4d} {r['ffmpeg_s']:9.2f} {r['pyav_decode_s']:7.2f} {r['ingest_s']:9.2f} "
              f"{r['ingest_s'] / r['ffmpeg_s']:14.2f} {r['ingest_over_ffmpeg_paired_median']:7.2f} "
              f"{r['ingest_s'] / r['pyav_decode_s']:12.2f} "
              f"{r['video_s'] / r['ingest_s']:9.1f}")
    print(f"\nwhole ingest stage, one shard of {args.videos} x {rows[0]['video_s']:.0f} s at 640x360, {workers} "
          f"worker process(es): {total_video_s:.1f} video-s in {stage_s:.2f} s = {total_video_s / stage_s:.1f} "
          f"video-seconds per wall-second ({failed} failed)")
    if args.json:
        args.json.write_text(json.dumps({"files": rows, "stage": {"video_s": total_video_s, "wall_s": stage_s,
                                                                  "workers": workers}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
