"""Track (GLaVE-Cap steps 2-3): vision experts with stable object IDs, then Set-of-Mark prompts.

Per video of the shard: the configured detector runs in batches on the dense frame sample, the
configured segmenter turns detections into tracks (BYTETracker on boxes, or SAM 2 mask
propagation with mask-IoU ID matching), and every keyframe gets its box JSON and a marked frame
(contours + IDs). Outputs: ``tracks`` (one row per object per sample, mask as COCO RLE) and
``marks`` (one row per keyframe), every row labelled with the backend and model that made it.
A video without objects gets no track rows and unmarked keyframes: an empty result, not an error.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .. import backends
from ..contract import Resources, ShardContext, Stage
from ..errors import VideoFailure

if TYPE_CHECKING:
    from ..parallel import VideoContext


class TrackStage(Stage):
    name: ClassVar[str] = "track"
    family: ClassVar[str] = "vision"
    needs: ClassVar[tuple[str, ...]] = ("ingest",)
    outputs: ClassVar[tuple[str, ...]] = ("tracks", "marks")
    config_sections: ClassVar[tuple[str, ...]] = ("run", "track")
    timeout_min: ClassVar[int] = 240
    work_in_pool: ClassVar[bool] = True
    warm_imports = backends.BackendImports("detector", "segmenter", own=("cv2",))  # cv2: frames and marks

    detector: Any = None
    segmenter: Any = None

    def resources(self) -> Resources:
        t = self.config.track
        return Resources(cpu="2", memory="4Gi").union(
            backends.resources("detector", t.detector.backend, t.detector),
            backends.resources("segmenter", t.segmenter.backend, t),
        )

    @property
    def backend_label(self) -> str:
        t = self.config.track
        return f"{t.detector.backend}+{t.segmenter.backend}"

    def model_ids(self) -> dict[str, str]:
        t = self.config.track
        return {**backends.model_ids("detector", t.detector.backend, t.detector),
                **backends.model_ids("segmenter", t.segmenter.backend, t)}

    def setup(self) -> None:
        if self.detector is not None:
            return
        t = self.config.track
        common = {"cache_dir": self.config.store.local_cache, "s3": self.config.store.s3}
        self.detector = backends.load("detector", t.detector.backend)(t.detector, min_object_px=t.min_object_px, **common)
        self.segmenter = backends.load("segmenter", t.segmenter.backend)(t, **common)

    @property
    def model_id(self) -> str:
        ids = [self.detector.model_id] + ([self.segmenter.model_id] if self.segmenter.model_id else [])
        return " + ".join(ids)

    def process(self, ctx: ShardContext) -> None:
        dense = _by_video(ctx.read("ingest", "dense_frames").to_pylist(), "sample_index")
        keyframes = _by_video(ctx.read("ingest", "keyframes").to_pylist(), "keyframe_index")
        cuts = _by_video(ctx.read("ingest", "cuts").to_pylist(), "cut_index")
        from ..parallel import map_videos

        tracks: list[dict[str, Any]] = []
        marks: list[dict[str, Any]] = []
        # CPU backends: videos spread over the stage's CPUs (GPU backends: one process), rows in
        # the shard's order.
        items = [(v.video_id, (v.video_id, dense[v.video_id], keyframes[v.video_id], cuts[v.video_id]))
                 for v in ctx.ok_videos()]
        for result in map_videos(ctx, self, "_video", items):
            if result is not None:
                tracks += result[0]
                marks += result[1]
        ctx.write("tracks", tracks)
        ctx.write("marks", marks)

    def _video(self, ctx: ShardContext | VideoContext, vid: str, dense: list[dict[str, Any]],
               keyframes: list[dict[str, Any]], cuts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from ..vision import rle, set_of_mark
        from ..vision.frame_loading import load_frames

        if not dense:
            if keyframes:
                raise VideoFailure("no_dense_frames", "ingest wrote keyframes but no dense frames")
            return [], []
        paths = [Path(ctx.upstream_file(r["image_key"])) for r in dense]
        frames = load_frames(vid, paths, [float(r["frame_index"]) for r in dense],
                             [float(c["frame_index"]) for c in cuts])
        t0 = time.perf_counter()
        detections = self.detector.detect(frames)
        t1 = time.perf_counter()
        objects = self.segmenter.track(frames, detections)
        t2 = time.perf_counter()
        ctx.add_metric("detect_s", t1 - t0)
        ctx.add_metric("segment_s", t2 - t1)
        ctx.add_metric("frames", len(frames))

        backend, model_id = self.backend_label, self.model_id
        tracks = [{
            "video_id": vid, "sample_index": r["sample_index"], "frame_index": r["frame_index"],
            "timestamp_s": r["timestamp_s"], "track_id": o.track_id, "label": o.label, "score": o.score,
            "x1": o.box[0], "y1": o.box[1], "x2": o.box[2], "y2": o.box[3], "mask": rle.encode(o.mask),
            "backend": backend, "model_id": model_id,
        } for r, objs in zip(dense, objects) for o in objs]

        marks = []
        position = {r["sample_index"]: i for i, r in enumerate(dense)}
        by_keyframe = {r["keyframe_index"]: position[r["sample_index"]] for r in dense if r["keyframe_index"] is not None}
        cfg = self.config.track
        for kf in keyframes:
            k = kf["keyframe_index"]
            i = by_keyframe.get(k)
            if i is None:  # not on the dense grid: the nearest sample in time stands in
                i = min(range(len(dense)), key=lambda j: abs(dense[j]["timestamp_s"] - kf["timestamp_s"]))
            image = frames.images[i] if kf["image_key"] == dense[i]["image_key"] else \
                load_frames(vid, [Path(ctx.upstream_file(kf["image_key"]))], [0.0], []).images[0]
            marked = set_of_mark.render(image, {o.track_id: o.mask for o in objects[i]},
                                        thickness=cfg.contour_thickness, min_object_px=cfg.min_object_px)
            key = ctx.put_bytes(marked.png, vid, f"marked-k{k:04d}.png")
            marks.append({
                "video_id": vid, "keyframe_index": k, "boxes_json": marked.boxes_json,
                "object_ids": marked.object_ids, "marked_image_key": key, "backend": backend,
            })
        ctx.add_metric("render_s", time.perf_counter() - t2)
        return tracks, marks


def _by_video(rows: list[dict[str, Any]], order: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["video_id"], r[order])):
        out[r["video_id"]].append(r)
    return out
