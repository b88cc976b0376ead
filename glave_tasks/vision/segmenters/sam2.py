"""Production segmenter: SAM 2 mask tracking seeded with detector boxes (TrackFusion).

Per shot, sample by sample (the detector runs on every ``segmenter.detect_every``-th sample of
the shot, starting with its first):

1. the sample's image features are computed once (``segmenter.encode_batch`` samples per
   image-encoder call) and shared by everything below;
2. every live track is propagated onto the sample from its own SAM 2 memory, all tracks in
   batched calls;
3. on a detection sample, the detections (at most ``track.max_objects_per_frame``, highest
   scores) become masks in one batched box-prompt call and are matched one-to-one to the live
   tracks' propagated masks at mask IoU >= ``track.match_iou``: a match keeps the track's ID and
   the detection's mask becomes a new conditioning memory of that track (SAM 2's memory of the
   track, its earlier frames included, is kept); any other detection starts a new track. A
   track no detection matched ends after ``track.max_missed_detections`` such samples (0, the
   default: at once; the method's rule, an object is present on a detection sample when the
   detector finds it there); within that allowance it is carried with its propagated mask. The
   objects of a sample never exceed ``track.max_objects_per_frame`` (highest scores kept);
4. between detection samples the live tracks keep their propagated masks; an object whose mask
   is empty (SAM 2 scores it absent) is not reported on that sample.

A hard cut ends every track and drops all memory. IDs are numbered per video in order of first
appearance.

Why not ``SAM2VideoPredictor``: sam2 1.1's predictor refuses new object ids once propagation has
started, so every detection step had to ``reset_state``, re-add every object and start its memory
afresh; it also runs each object separately and a second inference for box prompts. Here the
model is driven frame by frame (:mod:`glave_tasks.vision.sam2_memory`): each object owns a memory
bank, so a new object joins without disturbing the others' memories, and all objects of a frame
share the frame's features and batched calls. On CUDA the model, features and memory banks stay
on the GPU (frames are uploaded per encoder batch; the state is bounded by SAM 2's memory window,
a few MB per object), compute runs under bfloat16 autocast (``segmenter.precision``), and
``segmenter.compile`` compiles SAM 2's components as its ``vos_optimized`` predictor does, with
batch sizes padded to powers of two so that the compiled shapes repeat.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...backends import Backend
from ...config import S3Options, TrackConfig
from ...contract import Resources
from ...errors import ConfigError
from ...weights import resolve_weights
from ..mask_matching import match_masks
from ..sam2_memory import FrameFeatures, MemoryEntry, ObjectMemory, Sam2Memory
from ..track_lifecycle import TrackMeta, settle_detection_sample, top_scoring
from ..types import Detection, TrackedObject, VideoFrames, mask_box


class Sam2Propagator(Backend):
    backend = "sam2"
    warm_imports = ("sam2.build_sam", "ultralytics.trackers.utils.matching")  # the model; mask ID matching

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
        import torch
        from sam2.build_sam import build_sam2_video_predictor

        self.config = config
        self.device = seg.device
        self.cuda = seg.device.startswith("cuda")
        self.model_id = f"{seg.model_config_name}@{seg.checkpoint}"
        ckpt = resolve_weights(seg.checkpoint, cache_dir, s3)
        compile_model = seg.compile and self.cuda
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True  # float32 parts (mask upsampling, heads)
            torch.backends.cudnn.allow_tf32 = True
        # The video predictor class is SAM2Base with the video settings (and, vos_optimized, its
        # components compiled); only its model methods are used, not its inference state.
        self.model = build_sam2_video_predictor(
            seg.model_config_name, ckpt_path=str(ckpt), device=seg.device,
            hydra_overrides_extra=[f"++model.image_size={seg.image_size}"], vos_optimized=compile_model,
        )
        self.memory = Sam2Memory(self.model, max_cond_frames=seg.max_cond_frames, pad_batches=compile_model)
        self.propagated_frames = 0  # frames live tracks were propagated onto, for metrics and tests
        self.seconds = 0.0

    @property
    def sync_timing(self) -> bool:
        return self.memory.sync_timing

    @sync_timing.setter
    def sync_timing(self, value: bool) -> None:
        self.memory.sync_timing = value

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        import torch

        with torch.inference_mode():
            if self.cuda and self.config.segmenter.precision == "bfloat16":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    yield
            else:
                yield

    def track(self, video: VideoFrames, detections: list[list[Detection]]) -> list[list[TrackedObject]]:
        out: list[list[TrackedObject]] = [[] for _ in range(len(video))]
        if len(video) == 0 or not any(detections):
            return out
        started = time.perf_counter()
        next_id = [1]
        with self._inference():
            start = 0
            while start < len(video):
                end = start
                while end < len(video) and video.shots[end] == video.shots[start]:
                    end += 1
                self._track_shot(video, detections, start, end, out, next_id)
                start = end
        self.seconds += time.perf_counter() - started
        return out

    def _features(self, video: VideoFrames, frame: int, shot_end: int, cache: dict[int, FrameFeatures]) -> FrameFeatures:
        """Features of ``frame``; a miss encodes it and the next frames of the shot in one call."""
        if frame not in cache:
            chunk = list(range(frame, min(frame + self.config.segmenter.encode_batch, shot_end)))
            cache.clear()  # earlier frames are never needed again
            cache.update(zip(chunk, self.memory.encode([video.images[i] for i in chunk])))
        return cache[frame]

    def _track_shot(self, video: VideoFrames, detections: list[list[Detection]], start: int, end: int,
                    out: list[list[TrackedObject]], next_id: list[int]) -> None:
        cfg = self.config
        every = cfg.segmenter.detect_every
        cap = cfg.max_objects_per_frame
        height, width = video.images[start].shape[:2]
        tracks: dict[int, TrackMeta] = {}
        banks: dict[int, ObjectMemory] = {}
        cache: dict[int, FrameFeatures] = {}
        mem = self.memory
        for f in range(start, end):
            is_detection_sample = (f - start) % every == 0
            dets = detections[f] if is_detection_sample else []
            if not tracks and not dets:
                continue
            feats = self._features(video, f, end, cache)
            live = sorted(tracks)
            propagated: dict[int, np.ndarray] = {}
            if live:
                step = mem.propagate(f, feats, [banks[t] for t in live], height, width, len(video))
                self.propagated_frames += 1
                propagated = dict(zip(live, step.masks))
                for tid, entry in zip(live, step.entries):
                    banks[tid].add_recent(f, entry)  # replaced by a conditioning memory if matched
            present: dict[int, np.ndarray] = {t: m for t, m in propagated.items() if m.any()}
            if is_detection_sample:
                dets = [dets[k] for k in top_scoring([d.score for d in dets], cap)]
                det_masks: list[np.ndarray] = []
                det_memories: list[MemoryEntry] = []
                if dets:
                    seeded, _ = mem.seed(f, feats, [d.box for d in dets], height, width, len(video))
                    det_masks, det_memories = list(seeded.masks), seeded.entries
                matched = match_masks(present, det_masks, cfg.match_iou)  # detection index -> track id
                _, ended = settle_detection_sample(tracks, matched.values(), cfg.max_missed_detections)
                for tid in ended:
                    banks.pop(tid)
                    present.pop(tid, None)
                for d, det in enumerate(dets):
                    if d in matched:
                        tid = matched[d]
                        tracks[tid].label, tracks[tid].score = det.label, det.score
                    else:
                        tid = next_id[0]
                        next_id[0] += 1
                        banks[tid] = ObjectMemory()
                        tracks[tid] = TrackMeta(tid, det.label, det.score)
                    banks[tid].add_cond(f, det_memories[d], cfg.segmenter.max_cond_frames)
                    present[tid] = det_masks[d]
                if len(tracks) > cap:  # carried tracks compete with the detections by score
                    keep = set(top_scoring_ids(tracks, cap))
                    for tid in [t for t in tracks if t not in keep]:
                        del tracks[tid]
                        banks.pop(tid)
                        present.pop(tid, None)
            for tid in list(banks):
                banks[tid].prune(f + 1, mem.maskmem_window, mem.ptr_window)
            out[f] = [self._object(tid, present[tid], tracks[tid]) for tid in sorted(present)]

    @staticmethod
    def _object(track_id: int, mask: np.ndarray, meta: TrackMeta) -> TrackedObject:
        box = mask_box(mask)
        assert box is not None
        return TrackedObject(track_id, box, meta.score, meta.label, mask)


def top_scoring_ids(tracks: dict[int, TrackMeta], cap: int) -> list[int]:
    """IDs of the ``cap`` highest-scoring tracks (ties: the older track)."""
    ids = sorted(tracks)
    return [ids[i] for i in top_scoring([tracks[t].score for t in ids], cap)]
