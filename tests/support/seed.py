"""Seed committed upstream shards (ingest, track) for stage tests, without running those stages.

``seed_committed`` writes exactly what the stage runner would: tables and files under the run
layout, then a commit marker. ``upstream_from_truth`` turns a synthetic video's ground truth
into ingest and track tables (keyframes every ``keyframe_every_s`` within each shot, a cut at
every shot boundary, one track per ground-truth object) with small rendered JPEG frames.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from glave_tasks import schemas
from glave_tasks.config import GlaveConfig
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore

from .synthetic import GroundTruth


def seed_manifest(store: ArtifactStore, run_id: str, shards: dict[int, list[str]]) -> None:
    """A discover-compatible manifest: videos table + manifest.json (merged with an existing one)."""
    layout = RunLayout(run_id)
    rows = []
    if store.exists(layout.videos_table):
        rows = store.read_table(layout.videos_table, schemas.VIDEOS).to_pylist()
    known = {r["video_id"] for r in rows}
    for shard, vids in shards.items():
        for vid in vids:
            if vid not in known:
                digest = hashlib.sha256(vid.encode()).hexdigest()
                rows.append({"video_id": vid, "content_hash": digest, "source_uri": f"/videos/{vid}.mp4",
                             "file_name": f"{vid}.mp4", "size_bytes": 1, "shard": shard})
    store.write_table(layout.videos_table, schemas.rows_to_table(rows, schemas.VIDEOS), schemas.VIDEOS)
    store.write_json(layout.manifest, {
        "run_id": run_id, "input_uri": "/videos", "created_at": datetime.now(UTC).isoformat(),
        "pipeline_version": "glave-cap-1", "shard_size": max(len(v) for v in shards.values()),
        "shards": sorted({r["shard"] for r in rows}), "num_videos": len(rows),
        "skipped_already_annotated": 0, "duplicates": 0,
    })


def seed_committed(
    store: ArtifactStore,
    config: GlaveConfig,
    run_id: str,
    shard: int,
    stage: str,
    tables: dict[str, pa.Table],
    files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write a committed shard of ``stage``; the manifest is created/extended for its videos."""
    layout = RunLayout(run_id)
    vids = sorted({v for t in tables.values() for v in t.column("video_id").to_pylist()})
    seed_manifest(store, run_id, {shard: vids})
    for key, data in (files or {}).items():
        store.write_bytes(key, data)
    for name, table in tables.items():
        store.write_table(layout.table(stage, shard, name), table, schemas.TABLES[name])
    store.write_table(layout.table(stage, shard, "errors"), schemas.empty(schemas.ERRORS), schemas.ERRORS)
    marker = {
        "stage": stage, "run_id": run_id, "shard": shard,
        "fingerprint": hashlib.sha256(json.dumps([stage, vids, sorted(tables)]).encode()).hexdigest(),
        "videos_in": len(vids), "videos_ok": vids, "videos_failed": 0, "failures": {},
        "counts": {n: t.num_rows for n, t in tables.items()}, "metrics": {},
        "pipeline_version": config.run.pipeline_version,
    }
    store.write_json(layout.commit(stage, shard), marker)
    return marker


def _jpeg(width: int, height: int, boxes: dict[int, tuple[int, int, int, int]], marked: bool) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (190, 190, 180))
    draw = ImageDraw.Draw(img)
    for tid, (x1, y1, x2, y2) in boxes.items():
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=(60 * tid % 255, 80, 200))
        if marked:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 255, 255), width=2)
            draw.text(((x1 + x2) / 2, (y1 + y2) / 2), str(tid), fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def upstream_from_truth(
    run_id: str, shard: int, video_id: str, gt: GroundTruth, *, keyframe_every_s: float = 1.0,
    max_keyframes: int | None = None,
) -> tuple[dict[str, pa.Table], dict[str, pa.Table], dict[str, bytes]]:
    """(ingest tables, track tables, files) that ingest and track would write for ``gt``."""
    layout = RunLayout(run_id)
    step = max(1, int(round(keyframe_every_s * gt.fps)))
    starts = [gt.blank_frames, *gt.cut_frames]
    ends = [*gt.cut_frames, gt.num_frames]
    frames: list[tuple[int, int]] = []  # (frame index, shot index)
    for shot, (a, b) in enumerate(zip(starts, ends)):
        frames += [(f, shot) for f in range(a, b, step)]
    frames = frames[:max_keyframes] if max_keyframes else frames
    files: dict[str, bytes] = {}
    kf_rows, dense_rows, mark_rows, track_rows = [], [], [], []
    for k, (f, shot) in enumerate(frames):
        boxes = gt.boxes.get(f, {})
        clean = layout.file("ingest", shard, video_id, f"kf-{k:04d}.jpg")
        marked = layout.file("track", shard, video_id, f"som-{k:04d}.jpg")
        files[clean] = _jpeg(gt.width, gt.height, boxes, marked=False)
        files[marked] = _jpeg(gt.width, gt.height, boxes, marked=True)
        t = f / gt.fps
        kf_rows.append({"video_id": video_id, "keyframe_index": k, "frame_index": f, "timestamp_s": t,
                        "similarity": None if k == 0 else 0.5, "shot_index": shot, "image_key": clean,
                        "width": gt.width, "height": gt.height})
        dense_rows.append({"video_id": video_id, "sample_index": k, "frame_index": f, "timestamp_s": t,
                           "keyframe_index": k, "image_key": clean})
        mark_rows.append({"video_id": video_id, "keyframe_index": k, "object_ids": sorted(boxes),
                          "boxes_json": json.dumps({str(i): dict(zip(("x1", "y1", "x2", "y2"), map(float, b)))
                                                    for i, b in sorted(boxes.items())}),
                          "marked_image_key": marked, "backend": "ground-truth"})
        for tid, (x1, y1, x2, y2) in boxes.items():
            track_rows.append({"video_id": video_id, "sample_index": k, "frame_index": f, "timestamp_s": t,
                               "track_id": tid, "label": gt.labels[tid], "score": 1.0, "x1": x1, "y1": y1,
                               "x2": x2, "y2": y2, "mask": None, "backend": "ground-truth", "model_id": None})
    kf_of = {f: k for k, (f, _) in enumerate(frames)}
    cut_rows = [{"video_id": video_id, "cut_index": i, "frame_index": c, "timestamp_s": c / gt.fps,
                 "keyframe_index": kf_of[c]} for i, c in enumerate(gt.cut_frames) if c in kf_of]
    probe = {"video_id": video_id, "duration_s": gt.num_frames / gt.fps, "fps": float(gt.fps), "width": gt.width,
             "height": gt.height, "codec": "h264", "has_audio": False, "frames_decoded": gt.num_frames,
             "first_content_s": gt.blank_frames / gt.fps}

    def table(rows: list[dict], name: str) -> pa.Table:
        return schemas.rows_to_table(rows, schemas.TABLES[name])

    ingest = {"probes": table([probe], "probes"), "keyframes": table(kf_rows, "keyframes"),
              "dense_frames": table(dense_rows, "dense_frames"), "cuts": table(cut_rows, "cuts")}
    track = {"tracks": table(track_rows, "tracks"), "marks": table(mark_rows, "marks")}
    return ingest, track, files


def merge_tables(*parts: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Concatenate per-video table dicts into one shard's tables."""
    out: dict[str, list[pa.Table]] = {}
    for p in parts:
        for name, t in p.items():
            out.setdefault(name, []).append(t)
    return {n: pa.concat_tables(ts) for n, ts in out.items()}


def recommit(store: ArtifactStore, run_id: str, stage: str, shard: int, add: tuple[str, ...] = ()) -> None:
    """Re-record a committed shard's artifacts after a test rewrote one on purpose (to plant a
    scenario), as a new attempt's commit would: sizes, checksums and the marker's own seal."""
    from glave_tasks.integrity import entry, seal

    layout = RunLayout(run_id)
    key = layout.commit(stage, shard)
    marker = store.read_json(key)
    marker.pop("marker_sha256", None)
    prefix = layout.attempt_prefix(stage, shard, marker.get("attempt")) + "/"
    if isinstance(marker.get("artifacts"), dict):
        # An artifact the test removed leaves the record too (a shard committed without it).
        marker["artifacts"] = {rel: entry(data) for rel in [*marker["artifacts"], *add]
                               if (data := store.read_if_exists(prefix + rel)) is not None}
    store.write_json(key, seal(marker))
