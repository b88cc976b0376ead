"""Production segmenter: SAM 2's video predictor seeded with detector boxes (TrackFusion).

Per shot, walking the dense sample in steps of ``segmenter.detect_every`` samples:

1. each detection on the step's first sample becomes a mask (SAM 2 prompted with its box);
2. those masks are matched one-to-one to the masks the live tracks were propagated to on that
   sample, at mask IoU >= ``track.match_iou``: a match keeps the track's ID, anything else gets a
   new ID; live tracks the detector missed carry on with their propagated mask;
3. SAM 2 propagates every object's mask through the step and onto the next step's first sample,
   where matching happens again.

A hard cut ends every track (SAM 2 memory does not carry across shots). A box SAM 2 returns no
mask for keeps its filled box as mask, so a detection is never lost to the segmenter; an object
whose propagated mask is empty is absent on that sample.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...backends import Backend
from ...config import S3Options, TrackConfig
from ...contract import Resources
from ...errors import ConfigError
from ..mask_matching import match_masks
from ..types import Detection, TrackedObject, VideoFrames, box_mask, mask_box
from ...weights import resolve_weights


class Sam2Propagator(Backend):
    backend = "sam2"

    @classmethod
    def model_ids(cls, config: TrackConfig) -> dict[str, str]:
        return {"segmenter": f"{config.segmenter.model_config_name}@{config.segmenter.checkpoint}"}

    @classmethod
    def resources(cls, config: TrackConfig) -> Resources:
        return Resources(cpu="4", memory="16Gi", gpus=1, ephemeral_storage="40Gi")

    def __init__(self, config: TrackConfig, *, cache_dir: str | Path = "var/cache", s3: S3Options | None = None,
                 **_: Any) -> None:
        seg = config.segmenter
        if not seg.checkpoint:
            raise ConfigError("track.segmenter.checkpoint is required for the sam2 backend (local path or s3:// URI)")
        from ...compat.torchvision_ops import ensure_torchvision_ops

        ensure_torchvision_ops()
        from sam2.build_sam import build_sam2_video_predictor

        self.config = config
        self.device = seg.device
        self.model_id = f"{seg.model_config_name}@{seg.checkpoint}"
        ckpt = resolve_weights(seg.checkpoint, cache_dir, s3)
        self.predictor = build_sam2_video_predictor(
            seg.model_config_name, ckpt_path=str(ckpt), device=seg.device,
            hydra_overrides_extra=[f"++model.image_size={seg.image_size}"],
        )
        self.propagated_frames = 0  # frames SAM 2 propagated masks to, for metrics and tests
        self.seconds = 0.0

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield

    def track(self, video: VideoFrames, detections: list[list[Detection]]) -> list[list[TrackedObject]]:
        out: list[list[TrackedObject]] = [[] for _ in range(len(video))]
        if len(video) == 0 or not any(detections):
            return out
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="glave-sam2-") as folder, self._inference():
            # SAM 2 reads a folder of JPEGs named by frame number; the dense frames already are JPEGs.
            for i, path in enumerate(video.paths):
                os.symlink(Path(path).resolve(), Path(folder) / f"{i}.jpg")
            state = self.predictor.init_state(video_path=folder, offload_video_to_cpu=True,
                                              offload_state_to_cpu=not self.device.startswith("cuda"))
            self._track_video(state, video, detections, out)
        self.seconds += time.perf_counter() - started
        return out

    def _track_video(self, state: dict, video: VideoFrames, detections: list[list[Detection]],
                     out: list[list[TrackedObject]]) -> None:
        n = len(video)
        height, width = video.images[0].shape[:2]
        every = self.config.segmenter.detect_every
        meta: dict[int, tuple[str, float]] = {}  # track id -> (label, last detection score)
        live: dict[int, np.ndarray] = {}
        next_id = 1
        i = 0
        while i < n:
            shot_end = i
            while shot_end < n and video.shots[shot_end] == video.shots[i]:
                shot_end += 1
            if i == 0 or video.shots[i] != video.shots[i - 1]:
                live = {}
            step_end = min(i + every, shot_end)
            dets = detections[i]
            det_masks = self._box_masks(state, i, dets, height, width)
            matched = match_masks(live, det_masks, self.config.match_iou)
            objects = {tid: m for tid, m in live.items() if tid not in matched.values()}
            for d, det in enumerate(dets):
                tid = matched.get(d)
                if tid is None:
                    tid, next_id = next_id, next_id + 1
                objects[tid] = det_masks[d]
                meta[tid] = (det.label, det.score)
            objects = {tid: m for tid, m in sorted(objects.items()) if m.any()}
            out[i] = [self._object(tid, m, meta) for tid, m in objects.items()]
            live = {}
            # Propagate through the step and onto the next step's first sample (same shot only).
            last = step_end if step_end < shot_end else step_end - 1
            if objects and last > i:
                self.predictor.reset_state(state)
                for tid, m in objects.items():
                    self.predictor.add_new_mask(state, frame_idx=i, obj_id=tid, mask=m)
                for fi, obj_ids, logits in self.predictor.propagate_in_video(
                    state, start_frame_idx=i, max_frame_num_to_track=last - i
                ):
                    if fi == i:
                        continue
                    self.propagated_frames += 1
                    masks = (logits[:, 0] > 0).cpu().numpy()
                    found = {int(t): masks[k] for k, t in enumerate(obj_ids) if masks[k].any()}
                    if fi < step_end:
                        out[fi] = [self._object(t, m, meta) for t, m in sorted(found.items())]
                    else:
                        live = found
            i = step_end

    def _box_masks(self, state: dict, frame: int, dets: list[Detection], height: int, width: int) -> list[np.ndarray]:
        """SAM 2's mask for each detection box on one frame (its filled box where SAM 2 gives none)."""
        if not dets:
            return []
        self.predictor.reset_state(state)
        logits = None
        for k, det in enumerate(dets):
            _, _, logits = self.predictor.add_new_points_or_box(
                state, frame_idx=frame, obj_id=k, box=np.asarray(det.box, np.float32)
            )
        masks = (logits[:, 0] > 0).cpu().numpy()
        return [masks[k] if masks[k].any() else box_mask(det.box, height, width) for k, det in enumerate(dets)]

    @staticmethod
    def _object(track_id: int, mask: np.ndarray, meta: dict[int, tuple[str, float]]) -> TrackedObject:
        label, score = meta[track_id]
        box = mask_box(mask)
        assert box is not None
        return TrackedObject(track_id, box, score, label, mask)
