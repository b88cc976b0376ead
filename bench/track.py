"""Track stage benchmark: detector + segmenter on real footage, per phase, old and new design.

    .venv/bin/python bench/track.py                      # CPU default: classical detector + BYTETracker
    .venv/bin/python bench/track.py --compare-old        # also the earlier detector/PNG settings, side by side
    .venv/bin/python bench/track.py --segmenter sam2 [--compare-old]   # CPU: tiny random SAM 2.1
    python bench/track.py --device cuda --sam2 large --image-size 1024 --detector yolo \\
        --yolo-config yolov8x.yaml --objects 10 --frames 200 [--compile] [--compare-old]

Frames: the Big Buck Bunny clip (tests/data, 5.3 s, 1280x720) resized to ``--max-side`` (640:
640x360) and sampled every ``--interval`` s (0.5, the dense sample of the ingest stage). The clip
is short, so its samples are looped until there are ``--frames`` of them; every loop starts a new
shot (the jump back is a hard cut). ``--interval 0`` takes every decoded frame (132, one shot).

CPU default (``--segmenter bytetrack``): the stage's own detector, tracker and Set-of-Mark
renderer, one thread (each core of a 2-core pod runs one video). ``--compare-old`` repeats the run
with the earlier settings, reached through the same parameters: HOG at 640 px, pyramid step 1.05
with OpenCV's grouping, background model at 640 px, PNG level 3 with adaptive filters. Printed: ms per
frame of detect, segment (BYTETracker) and render (every sample marked, PNG-encoded), detections
and tracks found, and the old/new ratio of each.

Detections: ``classical`` runs the CPU expert (real detections on real footage). ``yolo`` runs
ultralytics with random weights built from ``--yolo-config`` at ``--detector-size`` for the
detection time; random weights find nothing meaningful, so with ``--objects K`` SAM 2 is seeded
with K boxes per frame drifting over the frame (scores 0.9 down to 0.5) instead. SAM 2 weights
are random too (``ckpt_path=None``; the object-score bias raised so masks are present): timings
are those of the production model sizes, not of their accuracy.

Printed per design: ms per frame, ms per object-frame (SAM 2 time, and everything), objects per
frame vs detections per frame (mean, max, largest in the last third of a shot vs the first),
peak GPU memory, video-seconds per wall-second, and the phases detect, encode (image encoder),
seed (detection masks), propagate (memory attention, mask decoder, memory encoder) and render
(Set-of-Mark). The old design has no encode/seed/propagate split (one ``track`` figure).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops  # noqa: E402
from glave_tasks.config import TrackConfig  # noqa: E402
from glave_tasks.vision import set_of_mark  # noqa: E402
from glave_tasks.vision.frame_loading import load_frames  # noqa: E402
from glave_tasks.vision.types import Detection, VideoFrames  # noqa: E402
from tests.support.track_media import sample_jpegs  # noqa: E402

SAM2_CONFIGS = {"tiny": "configs/sam2.1/sam2.1_hiera_t.yaml", "large": "configs/sam2.1/sam2.1_hiera_l.yaml"}
CLIP = ROOT / "tests" / "data" / "bigbuckbunny.mp4"


@dataclass
class Result:
    design: str
    frames: int
    video_s: float
    detect_s: float
    track_s: float
    render_s: float
    phases: dict[str, float] = field(default_factory=dict)
    objects: list[int] = field(default_factory=list)
    detections: list[int] = field(default_factory=list)
    shots: list[int] = field(default_factory=list)
    peak_gpu_gib: float | None = None
    warmup_s: float = 0.0


def real_frames(args: argparse.Namespace, work: Path) -> VideoFrames:
    sample = sample_jpegs(CLIP, work / "clip", interval_s=args.interval, max_side=args.max_side)
    n = len(sample.paths)
    loops = -(-args.frames // n)
    paths = [sample.paths[i % n] for i in range(max(args.frames, n))][:max(args.frames, n)]
    video = load_frames("bbb", sample.paths, sample.timestamps, [])
    images = [video.images[i % n] for i in range(len(paths))]
    shots = [i // n for i in range(len(paths))]
    print(f"frames: {len(paths)} ({n} real samples of {CLIP.name} every {args.interval or 'decoded'} s, "
          f"looped {loops}x, one shot per loop), {images[0].shape[1]}x{images[0].shape[0]}")
    step = args.interval or (1 / 25)
    return VideoFrames("bbb", images, paths, shots, [i * step for i in range(len(paths))])


class DriftingBoxes:
    """K boxes per frame on a grid, each drifting a few pixels per sample (controlled object count)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def detect(self, video: VideoFrames) -> list[list[Detection]]:
        height, width = video.images[0].shape[:2]
        cols = max(1, round(self.count ** 0.5))
        rows = -(-self.count // cols)
        bw, bh = width / cols * 0.6, height / rows * 0.6
        out = []
        for f in range(len(video)):
            dets = []
            for k in range(self.count):
                x = (k % cols + 0.2) * width / cols + 3 * (f % 10)
                y = (k // cols + 0.2) * height / rows + 2 * (f % 10)
                box = (min(x, width - bw), min(y, height - bh), min(x + bw, width), min(y + bh, height))
                dets.append(Detection(box, 0.9 - 0.4 * k / max(self.count - 1, 1), "object"))
            out.append(dets)
        return out


OLD_DETECTOR: dict[str, Any] = {"hog_scale": 1.05, "hog_group_threshold": 2, "hog_max_side": 640, "motion_max_side": 640}
OLD_PNG: dict[str, Any] = {"png_compression": 3, "png_filter_up": False}


@dataclass
class CpuResult:
    design: str
    frames: int
    detect_s: float
    segment_s: float
    render_s: float
    detections: dict[str, int]
    tracks: int
    object_frames: int
    png_bytes: int


def run_cpu_default(design: str, video: VideoFrames) -> CpuResult:
    """The CPU default track stage's per-video work on ``video``: detect, track, mark every sample."""
    from glave_tasks.vision.detectors.classical import ClassicalDetector
    from glave_tasks.vision.segmenters.bytetrack import ByteTrackSegmenter

    old = design.startswith("old")
    cfg = TrackConfig()
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(update=OLD_DETECTOR if old else {})})
    detector, segmenter = ClassicalDetector(cfg.detector), ByteTrackSegmenter(cfg)
    segmenter.track(video, [[] for _ in range(len(video))])  # the tracker's import, not counted
    t0 = time.perf_counter()
    found = detector.detect(video)
    t1 = time.perf_counter()
    objects = segmenter.track(video, found)
    t2 = time.perf_counter()
    png = 0
    for image, objs in zip(video.images, objects):
        png += len(set_of_mark.render(image, {o.track_id: o.mask for o in objs}, **(OLD_PNG if old else {})).png)
    t3 = time.perf_counter()
    labels: dict[str, int] = {}
    for dets in found:
        for d in dets:
            labels[d.label] = labels.get(d.label, 0) + 1
    tracks = len({o.track_id for objs in objects for o in objs})
    return CpuResult(design, len(video), t1 - t0, t2 - t1, t3 - t2, labels, tracks,
                     sum(len(o) for o in objects), png)


def report_cpu(results: list[CpuResult], interval: float) -> None:
    def row(label: str, fn: Any, ratio: Any = None) -> None:
        cells = "".join(f"{fn(r):>16}" for r in results)
        if ratio is not None and len(results) == 2:
            new, old = (ratio(r) for r in results)
            cells += f"{old / new if new else float('nan'):>14.2f}x"
        print(f"{label:<36}{cells}")

    print()
    row("design", lambda r: r.design)
    if len(results) == 2:
        print(f"{'':<36}{'':>32}{'old / new':>15}")
    for phase in ("detect", "segment", "render"):
        row(f"{phase} ms/frame", lambda r, p=phase: f"{getattr(r, p + '_s') / r.frames * 1e3:.1f}",
            lambda r, p=phase: getattr(r, p + "_s"))
    total = {r.design: r.detect_s + r.segment_s + r.render_s for r in results}
    row("all phases ms/frame", lambda r: f"{total[r.design] / r.frames * 1e3:.1f}", lambda r: total[r.design])
    row("video-seconds per core-second", lambda r: f"{r.frames * (interval or 1 / 25) / total[r.design]:.2f}")
    for label in sorted({k for r in results for k in r.detections}):
        row(f"detections '{label}'", lambda r, k=label: str(r.detections.get(k, 0)))
    row("tracks (distinct IDs)", lambda r: str(r.tracks))
    row("object-frames", lambda r: str(r.object_frames))
    row("PNG KiB per marked frame", lambda r: f"{r.png_bytes / r.frames / 1024:.0f}")


def build_detector(args: argparse.Namespace, work: Path) -> Any:
    if args.detector == "classical":
        from glave_tasks.vision.detectors.classical import ClassicalDetector

        return ClassicalDetector(TrackConfig().detector)
    from ultralytics import YOLO

    from glave_tasks.config import DetectorConfig
    from glave_tasks.vision.detectors.ultralytics import UltralyticsDetector

    weights = work / "yolo.pt"
    model = YOLO(args.yolo_config)  # architecture only: random weights, no download
    model.model.names = {0: "person", 1: "car"}
    model.save(str(weights))
    return UltralyticsDetector(DetectorConfig(backend="ultralytics", weights=str(weights), classes=["person", "car"],
                                              image_size=args.detector_size, device=args.device,
                                              batch_size=16), cache_dir=work)


def random_sam2(args: argparse.Namespace, work: Path) -> Path:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    model = build_sam2_video_predictor(SAM2_CONFIGS[args.sam2], ckpt_path=None, device="cpu",
                                       hydra_overrides_extra=[f"++model.image_size={args.image_size}"])
    state = model.state_dict()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 10.0  # random masks, but present
    path = work / f"sam2-{args.sam2}.pt"
    torch.save({"model": state}, path)
    return path


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run(design: str, args: argparse.Namespace, video: VideoFrames, seeds: list[list[Detection]], detect_s: float,
        checkpoint: Path, detections: list[int]) -> Result:
    import torch

    cfg = TrackConfig.model_validate({
        "segmenter": {"backend": "sam2", "checkpoint": str(checkpoint), "model_config_name": SAM2_CONFIGS[args.sam2],
                      "image_size": args.image_size, "device": args.device, "detect_every": args.detect_every,
                      "compile": args.compile, "encode_batch": args.encode_batch},
    })
    if design == "new":
        from glave_tasks.vision.segmenters.sam2 import Sam2Propagator

        seg: Any = Sam2Propagator(cfg, cache_dir=checkpoint.parent)
        seg.sync_timing = True
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from sam2_reset_per_step import ResetPerStepPropagator

        seg = ResetPerStepPropagator(cfg, str(checkpoint))
    warmup_s = 0.0
    if args.warmup:  # compile / cuDNN autotuning: a short first pass, not counted
        short = VideoFrames("warm", video.images[:args.warmup], video.paths[:args.warmup], [0] * args.warmup)
        t = time.perf_counter()
        seg.track(short, seeds[:args.warmup])
        sync(args.device)
        warmup_s = time.perf_counter() - t
        if design == "new":
            seg.memory.seconds = dict.fromkeys(seg.memory.seconds, 0.0)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(args.device)
    t0 = time.perf_counter()
    objects = seg.track(video, seeds)
    sync(args.device)
    t1 = time.perf_counter()
    for i, objs in enumerate(objects):
        set_of_mark.render(video.images[i], {o.track_id: o.mask for o in objs})
    t2 = time.perf_counter()
    phases = dict(seg.memory.seconds) if design == "new" else {}
    if phases:
        phases["other"] = (t1 - t0) - sum(phases.values())  # matching, mask transfer, bookkeeping
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
    step = args.interval or (1 / 25)
    return Result(design, len(video), len(video) * step, detect_s, t1 - t0, t2 - t1, phases,
                  [len(o) for o in objects], detections, list(video.shots), peak, warmup_s)


def growth(values: list[int], shots: list[int]) -> tuple[float, float]:
    """Mean over shots of (max in the first third, max in the last third) of the shot."""
    firsts, lasts = [], []
    for shot in sorted(set(shots)):
        idx = [i for i, s in enumerate(shots) if s == shot]
        third = max(1, len(idx) // 3)
        firsts.append(max(values[i] for i in idx[:third]))
        lasts.append(max(values[i] for i in idx[-third:]))
    return sum(firsts) / len(firsts), sum(lasts) / len(lasts)


def report(results: list[Result]) -> None:
    def row(label: str, fn: Any) -> None:
        print(f"{label:<44}" + "".join(f"{fn(r):>22}" for r in results))

    def mean(values: list[int]) -> float:
        return sum(values) / len(values) if values else 0.0

    print()
    row("design", lambda r: r.design)
    row("frames (video seconds)", lambda r: f"{r.frames} ({r.video_s:.0f} s)")
    total = {r.design: r.detect_s + r.track_s + r.render_s for r in results}
    row("ms per frame (all phases)", lambda r: f"{total[r.design] / r.frames * 1e3:.1f}")
    row("ms per object-frame, SAM 2", lambda r: f"{r.track_s / max(sum(r.objects), 1) * 1e3:.1f}")
    row("ms per object-frame, all phases", lambda r: f"{total[r.design] / max(sum(r.objects), 1) * 1e3:.1f}")
    row("objects per frame, mean / max", lambda r: f"{mean(r.objects):.1f} / {max(r.objects)}")
    row("detections per frame, mean / max", lambda r: f"{mean(r.detections):.1f} / {max(r.detections)}")
    row("objects, max in 1st / last third of shot", lambda r: "{:.1f} / {:.1f}".format(*growth(r.objects, r.shots)))
    row("object-frames", lambda r: str(sum(r.objects)))
    row("video-seconds per wall-second", lambda r: f"{r.video_s / total[r.design]:.2f}")
    row("peak GPU memory GiB", lambda r: "-" if r.peak_gpu_gib is None else f"{r.peak_gpu_gib:.2f}")
    row("warm-up pass s (not counted)", lambda r: f"{r.warmup_s:.1f}")
    row("detect ms/frame", lambda r: f"{r.detect_s / r.frames * 1e3:.1f}")
    for phase in ("encode", "seed", "propagate", "other"):
        row(f"{phase} ms/frame", lambda r, p=phase: f"{r.phases[p] / r.frames * 1e3:.1f}" if p in r.phases else "-")
    row("track total ms/frame", lambda r: f"{r.track_s / r.frames * 1e3:.1f}")
    row("render ms/frame", lambda r: f"{r.render_s / r.frames * 1e3:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    ap.add_argument("--frames", type=int, default=100, help="samples to track (the clip is looped to reach it)")
    ap.add_argument("--interval", type=float, default=0.5, help="sampling interval in s; 0: every decoded frame")
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--segmenter", choices=["bytetrack", "sam2"], default=None,
                    help="bytetrack (the CPU default) or sam2 (cuda default)")
    ap.add_argument("--sam2", choices=sorted(SAM2_CONFIGS), default=None, help="tiny (CPU default) or large (cuda default)")
    ap.add_argument("--image-size", type=int, default=None, help="SAM 2 input size (256 on CPU, 1024 on cuda)")
    ap.add_argument("--detector", choices=["classical", "yolo"], default=None)
    ap.add_argument("--yolo-config", default=None, help="yolov8n.yaml (CPU default) or yolov8x.yaml (cuda default)")
    ap.add_argument("--detector-size", type=int, default=640)
    ap.add_argument("--objects", type=int, default=0, help="seed SAM 2 with this many drifting boxes per frame")
    ap.add_argument("--detect-every", type=int, default=1)
    ap.add_argument("--encode-batch", type=int, default=4)
    ap.add_argument("--compile", action="store_true", help="torch.compile SAM 2's parts (cuda)")
    ap.add_argument("--warmup", type=int, default=None, help="frames of an uncounted first pass (cuda default 8)")
    ap.add_argument("--compare-old", action="store_true", help="also run the earlier reset-per-step design")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    if (args.segmenter or ("sam2" if cuda else "bytetrack")) == "bytetrack":
        import cv2

        cv2.setNumThreads(1)
        print(f"CPU default: classical detector + BYTETracker, OpenCV {cv2.__version__}, one thread")
        frames = real_frames(args, Path(tempfile.mkdtemp(prefix="glave-bench-track-")))
        designs = ["new"] + (["old settings"] if args.compare_old else [])
        report_cpu([run_cpu_default(d, frames) for d in designs], args.interval)
        return
    args.sam2 = args.sam2 or ("large" if cuda else "tiny")
    args.image_size = args.image_size or (1024 if cuda else 256)
    args.detector = args.detector or ("yolo" if cuda else "classical")
    args.yolo_config = args.yolo_config or ("yolov8x.yaml" if cuda else "yolov8n.yaml")
    args.warmup = args.warmup if args.warmup is not None else (8 if cuda else 0)
    ensure_torchvision_ops()
    import torch

    if cuda:
        print(f"device: {torch.cuda.get_device_name(args.device)}, torch {torch.__version__}")
    else:
        print(f"device: CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"SAM 2.1 {args.sam2} (random weights) at {args.image_size} px, detector {args.detector}"
          + (f" ({args.yolo_config}, random weights, {args.detector_size} px)" if args.detector == "yolo" else "")
          + (f", SAM 2 seeded with {args.objects} drifting boxes per frame" if args.objects else "")
          + f", detect_every {args.detect_every}, compile {args.compile and cuda}")
    work = Path(tempfile.mkdtemp(prefix="glave-bench-track-"))
    video = real_frames(args, work)
    detector = build_detector(args, work)
    t = time.perf_counter()
    found = detector.detect(video)
    sync(args.device)
    detect_s = time.perf_counter() - t
    seeds = DriftingBoxes(args.objects).detect(video) if args.objects else found
    counts = [len(d) for d in seeds]
    checkpoint = random_sam2(args, work)
    results = [run("new", args, video, seeds, detect_s, checkpoint, counts)]
    if args.compare_old:
        results.append(run("old (reset per step)", args, video, seeds, detect_s, checkpoint, counts))
    report(results)


if __name__ == "__main__":
    main()
