"""SAM 2 driven frame by frame: image features once per frame, one memory bank per object, all
objects of a frame in batched calls.

sam2 1.1's ``SAM2VideoPredictor`` fits interactive use, not detector-seeded tracking: once
propagation started it refuses new object ids (so new detections mean ``reset_state`` and losing
every live object's memory), it runs the memory attention and mask decoder once per object per
frame, and its box prompts run a second single-frame inference. This module drives the same
model (``SAM2Base``: ``forward_image``, ``track_step``, ``memory_attention``,
``_forward_sam_heads``, ``_encode_new_memory``) directly:

- :meth:`Sam2Memory.encode` runs the image encoder on a batch of frames; its features serve
  every call on those frames (detection masks and propagation alike);
- :meth:`Sam2Memory.seed` turns all detection boxes of a frame into masks in one batched prompt
  call (no memory: what SAM 2 gives for a box on a first frame) and encodes their memories;
- :meth:`Sam2Memory.propagate` tracks all live objects onto a frame. Each object has its own
  :class:`ObjectMemory` (detection-conditioned frames plus recent propagated frames), selected as
  SAM 2 selects memories (closest conditioning frames, the last ``num_maskmem - 1`` frames, object
  pointers of up to ``max_obj_ptrs_in_encoder`` frames with their temporal encodings). Objects
  born at different samples have memories at different frames, so the temporal encodings are
  built per object; objects whose memories hold the same number of entries (the same token
  count) share one memory-attention / mask-decoder / memory-encoder call.

Memories are stored as SAM 2 stores them (mask memories in bfloat16, object pointers as computed,
the spatial memory encoding once) and stay on the model's device; only the last frames' entries
are kept, so a shot of any length holds a bounded state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IMAGE_MEAN = (0.485, 0.456, 0.406)  # SAM 2's input normalisation (ImageNet)
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass
class MemoryEntry:
    """One object's memory of one frame."""

    maskmem: Any  # Tensor (mem_dim, h, w), bfloat16; None once outside the mask-memory window
    obj_ptr: Any  # Tensor (hidden_dim,)


@dataclass
class ObjectMemory:
    """Memory bank of one tracked object."""

    cond: dict[int, MemoryEntry] = field(default_factory=dict)  # detection-conditioned frames
    recent: dict[int, MemoryEntry] = field(default_factory=dict)  # propagated frames

    def add_cond(self, frame: int, entry: MemoryEntry, keep: int) -> None:
        self.cond[frame] = entry
        self.recent.pop(frame, None)
        for old in sorted(self.cond)[:-keep]:
            del self.cond[old]

    def add_recent(self, frame: int, entry: MemoryEntry) -> None:
        self.recent[frame] = entry

    def prune(self, next_frame: int, maskmem_window: int, ptr_window: int) -> None:
        """Forget what frames from ``next_frame`` on can no longer attend to."""
        for t in list(self.recent):
            if t < next_frame - ptr_window:
                del self.recent[t]
            elif t < next_frame - maskmem_window:
                self.recent[t].maskmem = None


@dataclass
class FrameFeatures:
    """Image-encoder output of one frame (batch of one), as ``forward_image`` returns it."""

    backbone_fpn: list[Any]
    vision_pos_enc: list[Any]


@dataclass
class StepOutput:
    masks: np.ndarray  # (B, H, W) bool at video resolution
    entries: list[MemoryEntry]


class Sam2Memory:
    """Batched SAM 2 calls over per-object memory banks. ``model`` is a ``SAM2Base`` (e.g. the
    ``SAM2VideoPredictor`` of ``build_sam2_video_predictor``), already on ``device``."""

    def __init__(self, model: Any, *, max_cond_frames: int = 2, pad_batches: bool = False,
                 sync_timing: bool = False) -> None:
        import torch

        self.model = model
        self.device = model.device
        self.max_cond_frames = max_cond_frames
        # Compiled (static-shape) parts recompile for every new batch size: pad to powers of two.
        self.pad_batches = pad_batches
        self.sync_timing = sync_timing  # CUDA runs asynchronously: phase timings need a sync
        self.size = int(model.image_size)
        self.mean = torch.tensor(IMAGE_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGE_STD, device=self.device).view(1, 3, 1, 1)
        self.maskmem_pos: Any = None  # spatial encoding of mask memories: the same for all
        stride = max(1, int(getattr(model, "memory_temporal_stride_for_eval", 1)))
        self.maskmem_window = (model.num_maskmem - 1) * stride + 1
        self.ptr_window = int(model.max_obj_ptrs_in_encoder)
        # Counters for metrics, the benchmark and tests.
        self.encoder_calls = 0
        self.encoded_frames = 0
        self.object_frames = 0  # objects propagated or seeded, summed over frames
        self.seconds = {"encode": 0.0, "seed": 0.0, "propagate": 0.0}

    # -- timing ------------------------------------------------------------------------------
    def _clock(self) -> float:
        if self.sync_timing and self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _padded(self, n: int) -> list[int]:
        """Batch row -> item index, padded to a power of two by repeating the last item."""
        if not self.pad_batches or n == 0:
            return list(range(n))
        size = 1 << (n - 1).bit_length()
        return list(range(n)) + [n - 1] * (size - n)

    # -- image features ----------------------------------------------------------------------
    def encode(self, images: list[np.ndarray]) -> list[FrameFeatures]:
        """Image features of RGB uint8 frames (all the same size), one encoder call."""
        import torch
        import torch.nn.functional as F

        started = self._clock()
        rows = self._padded(len(images))
        batch = torch.from_numpy(np.stack([images[i] for i in rows])).to(self.device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        # SAM 2 squashes every frame to image_size x image_size (no letterbox).
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False, antialias=True)
        x = (x.clamp_(0.0, 1.0) - self.mean) / self.std
        out = self.model.forward_image(x)
        self.encoder_calls += 1
        self.encoded_frames += len(images)
        frames = [FrameFeatures([f[i:i + 1] for f in out["backbone_fpn"]], [p[i:i + 1] for p in out["vision_pos_enc"]])
                  for i in range(len(images))]
        self.seconds["encode"] += self._clock() - started
        return frames

    def _batched(self, feats: FrameFeatures, batch: int) -> tuple[list[Any], list[Any], list[tuple[int, int]]]:
        """The frame's features expanded to ``batch`` objects, flattened as SAM 2 expects."""
        expanded = {"backbone_fpn": [f.expand(batch, -1, -1, -1) for f in feats.backbone_fpn],
                    "vision_pos_enc": [p.expand(batch, -1, -1, -1) for p in feats.vision_pos_enc]}
        _, vision_feats, vision_pos, sizes = self.model._prepare_backbone_features(expanded)
        return vision_feats, vision_pos, sizes

    # -- outputs -----------------------------------------------------------------------------
    def _to_video(self, low_res: Any, height: int, width: int) -> np.ndarray:
        import torch.nn.functional as F

        masks = F.interpolate(low_res.float(), size=(height, width), mode="bilinear", align_corners=False)
        return (masks[:, 0] > 0).cpu().numpy()

    def _entries(self, maskmem: Any, obj_ptr: Any, pos: list[Any], n: int) -> list[MemoryEntry]:
        import torch

        if self.maskmem_pos is None:
            # (mem_dim, h, w) -> (h*w, 1, mem_dim): the layout memory attention takes.
            self.maskmem_pos = pos[-1][0:1].flatten(2).permute(2, 0, 1).clone()
        maskmem = maskmem.to(torch.bfloat16)
        return [MemoryEntry(maskmem[b], obj_ptr[b]) for b in range(n)]

    # -- detection masks ---------------------------------------------------------------------
    def seed(self, frame: int, feats: FrameFeatures, boxes: list[tuple[float, float, float, float]], height: int,
             width: int, num_frames: int) -> tuple[StepOutput, list[bool]]:
        """Masks and memories of detection boxes on one frame, all boxes in one prompt call.

        A box SAM 2 finds no object in keeps its filled box: its memory is encoded from that
        mask (SAM 2's mask-prompt path), so the detector's object is tracked from there.
        Returns the output and, per box, whether it fell back to the filled box.
        """
        import torch

        from .types import box_mask

        started = self._clock()
        n = len(boxes)
        rows = self._padded(n)
        vision_feats, vision_pos, sizes = self._batched(feats, len(rows))
        scale = torch.tensor([self.size / width, self.size / height], device=self.device)
        coords = torch.tensor([boxes[i] for i in rows], dtype=torch.float32, device=self.device).view(-1, 2, 2) * scale
        labels = torch.tensor([[2, 3]] * len(rows), dtype=torch.int32, device=self.device)  # box corners
        out = self.model.track_step(
            frame_idx=frame, is_init_cond_frame=True, current_vision_feats=vision_feats,
            current_vision_pos_embeds=vision_pos, feat_sizes=sizes,
            point_inputs={"point_coords": coords, "point_labels": labels}, mask_inputs=None,
            output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, num_frames=num_frames,
        )
        masks = self._to_video(out["pred_masks"][:n], height, width)
        entries = self._entries(out["maskmem_features"], out["obj_ptr"], out["maskmem_pos_enc"], n)
        empty = [k for k in range(n) if not masks[k].any()]
        if empty:
            box_masks = torch.zeros(len(empty), 1, self.size, self.size, device=self.device)
            for j, k in enumerate(empty):
                x1, y1, x2, y2 = boxes[k]
                sx, sy = self.size / width, self.size / height
                box_masks[j, 0, int(y1 * sy):max(int(np.ceil(y2 * sy)), int(y1 * sy) + 1),
                          int(x1 * sx):max(int(np.ceil(x2 * sx)), int(x1 * sx) + 1)] = 1.0
            feats_e, pos_e, sizes_e = self._batched(feats, len(empty))
            fallback = self.model.track_step(
                frame_idx=frame, is_init_cond_frame=True, current_vision_feats=feats_e,
                current_vision_pos_embeds=pos_e, feat_sizes=sizes_e, point_inputs=None, mask_inputs=box_masks,
                output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, num_frames=num_frames,
            )
            redo = self._entries(fallback["maskmem_features"], fallback["obj_ptr"], fallback["maskmem_pos_enc"],
                                 len(empty))
            for j, k in enumerate(empty):
                entries[k] = redo[j]
                masks[k] = box_mask(boxes[k], height, width)
        self.object_frames += n
        self.seconds["seed"] += self._clock() - started
        return StepOutput(masks, entries), [k in empty for k in range(n)]

    # -- propagation -------------------------------------------------------------------------
    def _select(self, memory: ObjectMemory, frame: int,
                num_frames: int) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        """(temporal slot, mask memory) and (distance, object pointer) pairs the object attends
        to on ``frame``, chosen as ``SAM2Base._prepare_memory_conditioned_features`` chooses."""
        from sam2.modeling.sam2_utils import select_closest_cond_frames

        m = self.model
        selected, unselected = select_closest_cond_frames(frame, memory.cond, m.max_cond_frames_in_attn)
        slots: list[tuple[int, Any]] = [(0, e.maskmem) for e in selected.values()]
        stride = max(1, int(m.memory_temporal_stride_for_eval))
        for t_pos in range(1, m.num_maskmem):
            t_rel = m.num_maskmem - t_pos
            prev = frame - 1 if t_rel == 1 else ((frame - 2) // stride) * stride - (t_rel - 2) * stride
            entry = memory.recent.get(prev) or unselected.get(prev)
            if entry is not None and entry.maskmem is not None:
                slots.append((t_pos, entry.maskmem))
        ptrs: list[tuple[int, Any]] = []
        if m.use_obj_ptrs_in_encoder:
            past = {t: e for t, e in selected.items() if t <= frame} if m.only_obj_ptrs_in_the_past_for_eval else selected
            ptrs = [((frame - t) if m.use_signed_tpos_enc_to_obj_ptrs else abs(frame - t), e.obj_ptr)
                    for t, e in past.items()]
            for t_diff in range(1, min(num_frames, m.max_obj_ptrs_in_encoder)):
                entry = memory.recent.get(frame - t_diff) or unselected.get(frame - t_diff)
                if entry is not None:
                    ptrs.append((t_diff, entry.obj_ptr))
        return slots, ptrs

    def _condition(self, picks: list[tuple[list[tuple[int, Any]], list[tuple[int, Any]]]], vision_feats: list[Any],
                   vision_pos: list[Any], sizes: list[tuple[int, int]], num_frames: int) -> Any:
        """Memory attention for a batch of objects with equally long memories."""
        import torch
        from sam2.modeling.sam2_utils import get_1d_sine_pe

        m = self.model
        batch = len(picks)
        hidden = m.hidden_dim
        height, width = sizes[-1]
        dtype = vision_feats[-1].dtype
        tokens, token_pos = [], []
        for j in range(len(picks[0][0])):
            feats = torch.stack([slots[j][1] for slots, _ in picks]).to(dtype)  # (B, mem_dim, h, w)
            tokens.append(feats.flatten(2).permute(2, 0, 1))
            tpos = torch.cat([m.maskmem_tpos_enc[m.num_maskmem - slots[j][0] - 1] for slots, _ in picks], dim=1)
            token_pos.append(self.maskmem_pos.to(dtype) + tpos.to(dtype))
        num_ptr_tokens = 0
        if picks[0][1]:
            ptrs = torch.stack([torch.stack([p for _, p in pl]) for _, pl in picks], dim=1).to(dtype)  # (P, B, C)
            if m.add_tpos_enc_to_obj_ptrs:
                t_diff_max = max(min(num_frames, m.max_obj_ptrs_in_encoder) - 1, 1)
                tpos_dim = hidden if m.proj_tpos_enc_in_obj_ptrs else m.mem_dim
                dist = torch.tensor([[d for d, _ in pl] for _, pl in picks], device=self.device,
                                    dtype=torch.float32).T  # (P, B): each object's own distances
                ptr_pos = m.obj_ptr_tpos_proj(get_1d_sine_pe(dist / t_diff_max, dim=tpos_dim)).to(dtype)
            else:
                ptr_pos = ptrs.new_zeros(ptrs.shape[0], batch, m.mem_dim)
            if m.mem_dim < hidden:  # a pointer becomes hidden // mem_dim tokens
                split = hidden // m.mem_dim
                ptrs = ptrs.reshape(-1, batch, split, m.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
                ptr_pos = ptr_pos.repeat_interleave(split, dim=0)
            tokens.append(ptrs)
            token_pos.append(ptr_pos)
            num_ptr_tokens = ptrs.shape[0]
        pix = m.memory_attention(curr=vision_feats[-1:], curr_pos=vision_pos[-1:], memory=torch.cat(tokens, dim=0),
                                 memory_pos=torch.cat(token_pos, dim=0), num_obj_ptr_tokens=num_ptr_tokens)
        return pix.permute(1, 2, 0).reshape(batch, hidden, height, width)

    def propagate(self, frame: int, feats: FrameFeatures, memories: list[ObjectMemory], height: int, width: int,
                  num_frames: int) -> StepOutput:
        """Track every object of ``memories`` onto ``frame``: masks and this frame's memories."""
        started = self._clock()
        n = len(memories)
        picks = [self._select(mem, frame, num_frames) for mem in memories]
        groups: dict[tuple[int, int], list[int]] = {}
        for k, (slots, ptrs) in enumerate(picks):
            if not slots:  # cannot happen: every object has a conditioning frame
                raise RuntimeError(f"object without memory on frame {frame}")
            groups.setdefault((len(slots), len(ptrs)), []).append(k)
        masks = np.zeros((n, height, width), bool)
        entries: list[MemoryEntry | None] = [None] * n
        m = self.model
        for members in groups.values():
            rows = [members[r] for r in self._padded(len(members))]
            vision_feats, vision_pos, sizes = self._batched(feats, len(rows))
            pix = self._condition([picks[k] for k in rows], vision_feats, vision_pos, sizes, num_frames)
            high_res = [x.permute(1, 2, 0).reshape(x.size(1), x.size(2), *s)
                        for x, s in zip(vision_feats[:-1], sizes[:-1])] if len(vision_feats) > 1 else None
            _, _, _, low_res, high_res_masks, obj_ptr, scores = m._forward_sam_heads(
                backbone_features=pix, point_inputs=None, mask_inputs=None, high_res_features=high_res,
                multimask_output=m._use_multimask(False, None),
            )
            maskmem, pos = m._encode_new_memory(vision_feats, sizes, high_res_masks, scores, is_mask_from_pts=False)
            count = len(members)
            step_masks = self._to_video(low_res[:count], height, width)
            for j, (k, entry) in enumerate(zip(members, self._entries(maskmem, obj_ptr, pos, count))):
                masks[k] = step_masks[j]
                entries[k] = entry
        self.object_frames += n
        self.seconds["propagate"] += self._clock() - started
        return StepOutput(masks, [e for e in entries if e is not None])
