"""Per-video facts from the ingest and track tables, in the shape prompts and rules need.

Caption, bridge and QA read them the same way: ``load_facts`` joins a shard's upstream tables
per video, and a video whose rows are incomplete is recorded as failed without stopping the others.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..contract import ShardContext
from ..errors import VideoFailure

Box = dict[str, float]  # {"x1","y1","x2","y2"} in pixels


@dataclass
class KeyframeFacts:
    index: int
    timestamp_s: float
    shot_index: int
    image_path: str
    marked_path: str
    width: int
    height: int
    boxes: dict[int, Box] = field(default_factory=dict)

    @property
    def boxes_json(self) -> str:
        return json.dumps({str(k): {c: round(v[c], 1) for c in ("x1", "y1", "x2", "y2")}
                           for k, v in sorted(self.boxes.items())}, separators=(",", ":"))


@dataclass
class VideoFacts:
    video_id: str
    duration_s: float
    width: int
    height: int
    keyframes: list[KeyframeFacts]
    labels: dict[int, str]  # track id -> detector label (majority over its detections)
    cut_keyframes: list[int]  # keyframes that start a new shot

    def label(self, track_id: int) -> str:
        return self.labels.get(track_id, "object")


def group_rows(table: pa.Table) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in table.to_pylist():
        out[row["video_id"]].append(row)
    return out


def majority_labels(track_rows: list[dict[str, Any]]) -> dict[int, str]:
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    for r in track_rows:
        votes[int(r["track_id"])][r["label"]] += 1
    return {tid: c.most_common(1)[0][0] for tid, c in votes.items()}


def parse_boxes(boxes_json: str) -> dict[int, Box]:
    raw = json.loads(boxes_json or "{}")
    return {int(k): {c: float(v[c]) for c in ("x1", "y1", "x2", "y2")} for k, v in raw.items()}


def build_facts(
    video_id: str,
    probe: dict[str, Any],
    keyframes: list[dict[str, Any]],
    marks: list[dict[str, Any]],
    tracks: list[dict[str, Any]],
    cuts: list[dict[str, Any]],
    local_path: Any,
) -> VideoFacts:
    """Join one video's rows; ``local_path(key)`` gives a local file for a store key."""
    if not keyframes:
        raise VideoFailure("no_keyframes", "ingest produced no keyframe for this video")
    by_kf = {int(m["keyframe_index"]): m for m in marks}
    kfs = []
    for row in sorted(keyframes, key=lambda r: r["keyframe_index"]):
        idx = int(row["keyframe_index"])
        mark = by_kf.get(idx)
        if mark is None:
            raise VideoFailure("missing_marks", f"track wrote no Set-of-Mark frame for keyframe {idx}")
        kfs.append(KeyframeFacts(
            index=idx, timestamp_s=float(row["timestamp_s"]), shot_index=int(row["shot_index"]),
            image_path=str(local_path(row["image_key"])), marked_path=str(local_path(mark["marked_image_key"])),
            width=int(row["width"]), height=int(row["height"]), boxes=parse_boxes(mark["boxes_json"]),
        ))
    if [k.index for k in kfs] != list(range(len(kfs))):
        raise VideoFailure("bad_keyframes", f"keyframe indices are not 0..n-1: {[k.index for k in kfs]}")
    cut_kfs = sorted({int(c["keyframe_index"]) for c in cuts if 0 < int(c["keyframe_index"]) < len(kfs)})
    return VideoFacts(
        video_id=video_id, duration_s=float(probe.get("duration_s") or 0.0),
        width=int(probe.get("width") or kfs[0].width), height=int(probe.get("height") or kfs[0].height),
        keyframes=kfs, labels=majority_labels(tracks), cut_keyframes=cut_kfs,
    )


def load_facts(ctx: ShardContext, *, with_images: bool = True) -> list[VideoFacts]:
    """Facts of every video of the shard that has them; the others are recorded as failed.

    ``with_images=False`` keeps store keys instead of local files (the bridge reads no image,
    so an S3 store downloads nothing).
    """
    probes = {r["video_id"]: r for r in ctx.read("ingest", "probes").to_pylist()}
    keyframes = group_rows(ctx.read("ingest", "keyframes"))
    cuts = group_rows(ctx.read("ingest", "cuts"))
    marks = group_rows(ctx.read("track", "marks"))
    tracks = group_rows(ctx.read("track", "tracks", ["video_id", "track_id", "label"]))
    local: Callable[[str], Any] = ctx.upstream_file if with_images else (lambda key: key)
    out = []
    for v in ctx.ok_videos():
        with ctx.guard(v.video_id):
            out.append(build_facts(v.video_id, probes.get(v.video_id, {}), keyframes.get(v.video_id, []),
                                   marks.get(v.video_id, []), tracks.get(v.video_id, []), cuts.get(v.video_id, []),
                                   local))
    return out
