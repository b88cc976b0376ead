"""The SAM 2 tracking design the track stage used before (kept for ``bench/track.py`` only).

SAM 2's video predictor per detection step: ``reset_state``, every object re-added with
``add_new_mask``, one more single-frame inference per detection (``add_new_points_or_box``) for the
detection masks, and a live track no detection matched carried on as long as SAM 2 returns a
non-empty mask for it. Unchanged from the stage's earlier ``Sam2Propagator`` except for its
constructor, so that the benchmark can put the two designs side by side on the same frames.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from glave_tasks.config import TrackConfig
from glave_tasks.vision.mask_matching import match_masks
from glave_tasks.vision.types import Detection, TrackedObject, VideoFrames, box_mask, mask_box


class ResetPerStepPropagator:
    backend = "sam2-reset-per-step"

    def __init__(self, config: TrackConfig, checkpoint: str) -> None:
        from sam2.build_sam import build_sam2_video_predictor

        seg = config.segmenter
        self.config = config
        self.device = seg.device
        self.predictor = build_sam2_video_predictor(
            seg.model_config_name, ckpt_path=checkpoint, device=seg.device,
            hydra_overrides_extra=[f"++model.image_size={seg.image_size}"],
        )
        self.propagated_frames = 0
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
