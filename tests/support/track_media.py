"""Dense frame samples of test videos, as the ingest stage writes them (JPEG every 0.5 s), and
scoring of tracks against synthetic ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from glave_tasks.vision.detectors.classical import box_iou


@dataclass
class DenseSample:
    paths: list[Path]
    timestamps: list[float]
    frame_indices: list[int]
    width: int
    height: int


def sample_jpegs(video: Path, out: Path, *, interval_s: float = 0.5, max_side: int = 1024,
                 limit: int | None = None) -> DenseSample:
    """Decode ``video`` and keep one frame every ``interval_s`` as a JPEG, resized to ``max_side``."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    stamps: list[float] = []
    indices: list[int] = []
    size = (0, 0)
    next_t = 0.0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for n, frame in enumerate(container.decode(stream)):
            t = float(frame.pts * stream.time_base)
            if t + 1e-6 < next_t:
                continue
            image = frame.to_image()
            k = max_side / max(image.size)
            if k < 1:
                image = image.resize((round(image.size[0] * k), round(image.size[1] * k)))
            size = image.size
            path = out / f"{len(paths):05d}.jpg"
            image.save(path, quality=90)
            paths.append(path)
            stamps.append(t)
            indices.append(n)
            next_t += interval_s
            if limit and len(paths) >= limit:
                break
    return DenseSample(paths, stamps, indices, size[0], size[1])


@dataclass
class TrackScore:
    recall: float  # share of ground-truth (frame, object) pairs covered by a track box at IoU >= 0.5
    id_switches: int  # times a ground-truth object's matched track id changed
    false_tracks: int  # track ids never matched to a ground-truth object


def score_tracks(gt_boxes: dict[int, dict[int, tuple[int, int, int, int]]],
                 predicted: dict[int, list[tuple[int, tuple[float, ...]]]]) -> TrackScore:
    """``predicted``: frame index -> [(track id, box)]. Greedy IoU matching per frame."""
    total = hit = switches = 0
    last_id: dict[int, int] = {}
    matched_ids: set[int] = set()
    all_ids = {tid for rows in predicted.values() for tid, _ in rows}
    for frame, objects in sorted(gt_boxes.items()):
        if frame not in predicted:
            continue
        rows = list(predicted[frame])
        for gt_id, gt_box in sorted(objects.items()):
            total += 1
            best = max(rows, key=lambda r: box_iou(gt_box, r[1]), default=None)
            if best is None or box_iou(gt_box, best[1]) < 0.5:
                continue
            rows.remove(best)
            hit += 1
            matched_ids.add(best[0])
            if gt_id in last_id and last_id[gt_id] != best[0]:
                switches += 1
            last_id[gt_id] = best[0]
    return TrackScore(hit / total if total else 1.0, switches, len(all_ids - matched_ids))
