"""Frames per second of the track backends on CPU, and where the time goes.

    .venv/bin/python bench/track.py [--frames 6] [--sizes 320 640]

Backends: classical (HOG + MOG2 + BYTETracker), ultralytics tiny (random yolov8n, BYTETracker),
ultralytics + SAM 2 tiny (random SAM 2.1 hiera-t at image_size 256, seeded with the YOLO
boxes, or with one centre box when a random YOLO finds nothing). Frames are the dense sample
(0.5 s) of the Big Buck Bunny clip resized to the given max side. Random weights make the
timings representative of compute, not of detection quality.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")

from glave_tasks.compat.torchvision_ops import ensure_torchvision_ops  # noqa: E402
from glave_tasks.config import TrackConfig  # noqa: E402
from glave_tasks.vision import set_of_mark  # noqa: E402
from glave_tasks.vision.segmenters.bytetrack import ByteTrackSegmenter  # noqa: E402
from glave_tasks.vision.detectors.classical import ClassicalDetector  # noqa: E402
from glave_tasks.vision.frame_loading import load_frames  # noqa: E402
from glave_tasks.vision.types import Detection  # noqa: E402
from tests.support.track_media import sample_jpegs  # noqa: E402


class _Seeded:
    """Gives SAM 2 at least one box per frame when the random detector finds none."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def detect(self, video):
        out = self.inner.detect(video)
        h, w = video.images[0].shape[:2]
        return [d[:4] or [Detection((w * 0.3, h * 0.3, w * 0.6, h * 0.7), 0.5, "person")] for d in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    args = ap.parse_args()
    ensure_torchvision_ops()
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from ultralytics import YOLO

    from glave_tasks.vision.segmenters.sam2 import Sam2Propagator
    from glave_tasks.vision.detectors.ultralytics import UltralyticsDetector

    work = Path(tempfile.mkdtemp(prefix="glave-bench-track-"))
    yolo = work / "yolo.pt"
    model = YOLO("yolov8n.yaml")
    model.model.names = {0: "person", 1: "car"}
    model.save(str(yolo))
    torch.manual_seed(0)
    sam = build_sam2_video_predictor("configs/sam2.1/sam2.1_hiera_t.yaml", ckpt_path=None, device="cpu",
                                     hydra_overrides_extra=["++model.image_size=256"])
    sd = sam.state_dict()
    sd["sam_mask_decoder.pred_obj_score_head.layers.2.bias"] += 10.0
    torch.save({"model": sd}, work / "sam2.pt")

    rows = []
    for size in args.sizes:
        sample = sample_jpegs(ROOT / "tests/data/bigbuckbunny.mp4", work / f"f{size}", max_side=size, limit=args.frames)
        video = load_frames("bbb", sample.paths, sample.timestamps, [])
        cfg = TrackConfig.model_validate({
            "detector": {"backend": "ultralytics", "weights": str(yolo), "image_size": size, "confidence": 0.01},
            "segmenter": {"backend": "sam2", "checkpoint": str(work / "sam2.pt"), "image_size": 256},
        })
        setups = [
            ("classical", ClassicalDetector(TrackConfig().detector), ByteTrackSegmenter(TrackConfig())),
            ("ultralytics tiny", UltralyticsDetector(cfg.detector, cache_dir=work), ByteTrackSegmenter(cfg)),
            ("ultralytics+sam2 tiny", _Seeded(UltralyticsDetector(cfg.detector, cache_dir=work)),
             Sam2Propagator(cfg, cache_dir=work)),
        ]
        for name, det, seg in setups:
            t0 = time.perf_counter()
            dets = det.detect(video)
            t1 = time.perf_counter()
            objs = seg.track(video, dets)
            t2 = time.perf_counter()
            for i, o in enumerate(objs):
                set_of_mark.render(video.images[i], {x.track_id: x.mask for x in o})
            t3 = time.perf_counter()
            n = len(video)
            rows.append((name, size, n, n / (t3 - t0), (t1 - t0) / n * 1e3, (t2 - t1) / n * 1e3, (t3 - t2) / n * 1e3))
    print(f"\n{'backend':<24}{'px':>5}{'frames':>7}{'fps':>8}{'detect ms/f':>13}{'track/prop ms/f':>17}{'render ms/f':>13}")
    for name, size, n, fps, d, p, r in rows:
        print(f"{name:<24}{size:>5}{n:>7}{fps:>8.2f}{d:>13.1f}{p:>17.1f}{r:>13.1f}")


if __name__ == "__main__":
    main()
