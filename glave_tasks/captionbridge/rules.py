"""Rules answers to the CaptionBridge tasks, written from tracking and ingest facts.

Honest by construction: they state which tracked objects (with IDs and detector labels) are where
in the frame, how their boxes move between keyframes, and where shots cut. They do not describe
appearance or background, which only a vision-language model can see.
"""

from __future__ import annotations

import json
from typing import Any

from ..language.engines.rules import rule
from ..language.video_facts import Box, KeyframeFacts, VideoFacts

MOVE_FRACTION = 0.04  # centre shift (share of frame size) below which an object "stays"
SCALE_CHANGE = 1.25  # area ratio above which an object "grows"/"shrinks"


def _centre(b: Box) -> tuple[float, float]:
    return (b["x1"] + b["x2"]) / 2, (b["y1"] + b["y2"]) / 2


def _area(b: Box) -> float:
    return max(b["x2"] - b["x1"], 0.0) * max(b["y2"] - b["y1"], 0.0)


def where(b: Box, width: int, height: int) -> str:
    cx, cy = _centre(b)
    col = "left" if cx < width / 3 else "right" if cx > 2 * width / 3 else "centre"
    row = "top" if cy < height / 3 else "bottom" if cy > 2 * height / 3 else "middle"
    if (row, col) == ("middle", "centre"):
        return "the centre of the frame"
    if row == "middle":
        return f"the {col} of the frame"
    if col == "centre":
        return f"the {row} of the frame"
    return f"the {row} {col} of the frame"


def motion(a: Box, b: Box, width: int, height: int) -> str | None:
    """How a box moved from ``a`` to ``b`` in words, or None when it stayed."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    dx, dy = (bx - ax) / max(width, 1), (by - ay) / max(height, 1)
    parts = []
    if abs(dx) >= MOVE_FRACTION:
        parts.append("right" if dx > 0 else "left")
    if abs(dy) >= MOVE_FRACTION:
        parts.append("down" if dy > 0 else "up")
    ratio = (_area(b) + 1) / (_area(a) + 1)
    desc = f"moves {' and '.join(parts)}" if parts else ""
    if ratio >= SCALE_CHANGE or ratio <= 1 / SCALE_CHANGE:
        grow = "grows larger" if ratio > 1 else "becomes smaller"
        desc = f"{desc} and {grow}" if desc else grow
    return desc or None


def name(video: VideoFacts, track_id: int) -> str:
    return f"the {video.label(track_id)} (ID={track_id})"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _shots(video: VideoFacts) -> list[tuple[int, int]]:
    starts = [0, *video.cut_keyframes]
    ends = [s - 1 for s in starts[1:]] + [len(video.keyframes) - 1]
    return list(zip(starts, ends))


def _objects_in(kfs: list[KeyframeFacts]) -> list[int]:
    return sorted({tid for k in kfs for tid in k.boxes})


@rule("overview")
def overview(ctx: dict[str, Any]) -> str:
    video: VideoFacts = ctx["video"]
    sentences = []
    shots = _shots(video)
    shown = ctx.get("shown") or [{"index": 0}, {"index": len(video.keyframes) - 1}]
    lo, hi = shown[0]["index"], shown[-1]["index"]  # a part of a long video covers only these
    for n, (a, b) in enumerate(shots):
        if b < lo or a > hi:
            continue
        a, b = max(a, lo), min(b, hi)
        kfs = video.keyframes[a:b + 1]
        span = f"[{a} - {b}]"
        t0, t1 = kfs[0].timestamp_s, kfs[-1].timestamp_s
        lead = f"Shot {n + 1} of {len(shots)}, from {t0:.1f} s to {t1:.1f} s,"
        ids = _objects_in(kfs)
        if not ids:
            sentences.append(f"{lead} shows no tracked object. {span}")
            continue
        sentences.append(f"{lead} shows {', '.join(name(video, i) for i in ids)}. {span}")
        for tid in ids:
            seen = [k for k in kfs if tid in k.boxes]
            first, last = seen[0], seen[-1]
            moved = motion(first.boxes[tid], last.boxes[tid], video.width, video.height)
            start_where = where(first.boxes[tid], video.width, video.height)
            end_where = where(last.boxes[tid], video.width, video.height)
            rng = f"[{first.index} - {last.index}]"
            if moved and first is not last:
                sentences.append(f"{_cap(name(video, tid))} {moved}, from {start_where} to {end_where}. {rng}")
            else:
                sentences.append(f"{_cap(name(video, tid))} stays in {start_where}. {rng}")
    return " ".join(sentences)


@rule("overview_merge")
def overview_merge(ctx: dict[str, Any]) -> str:
    return " ".join(p["text"] for p in ctx["parts"])


@rule("attention")
def attention(ctx: dict[str, Any]) -> str:
    video: VideoFacts = ctx["video"]
    kf: KeyframeFacts = video.keyframes[ctx["index"]]
    head = f"Keyframe {kf.index} at {kf.timestamp_s:.1f} s"
    if not kf.boxes:
        return f"{head} shows no tracked object."
    parts = []
    for tid, box in sorted(kf.boxes.items()):
        w_share = 100 * (box["x2"] - box["x1"]) / max(kf.width, 1)
        h_share = 100 * (box["y2"] - box["y1"]) / max(kf.height, 1)
        parts.append(f"{name(video, tid)} in {where(box, kf.width, kf.height)}, "
                     f"about {w_share:.0f}% of the frame wide and {h_share:.0f}% high")
    noun = "object" if len(parts) == 1 else "objects"
    return f"{head} shows {len(parts)} tracked {noun}: " + "; ".join(parts) + "."


@rule("differential")
def differential(ctx: dict[str, Any]) -> str:
    video: VideoFacts = ctx["video"]
    cur = video.keyframes[ctx["index"]]
    prev = video.keyframes[ctx["index"] - 1]
    if cur.index in video.cut_keyframes:
        lead = f"The shot cuts between keyframe {prev.index} and keyframe {cur.index}."
        new = [name(video, t) for t in sorted(cur.boxes)]
        return f"{lead} The new shot shows {', '.join(new)}." if new else f"{lead} The new shot shows no tracked object."
    sentences = []
    for tid in sorted(set(prev.boxes) | set(cur.boxes)):
        who = _cap(name(video, tid))
        if tid not in prev.boxes:
            sentences.append(f"{who} appears in {where(cur.boxes[tid], cur.width, cur.height)}.")
        elif tid not in cur.boxes:
            sentences.append(f"{who} leaves the view.")
        else:
            moved = motion(prev.boxes[tid], cur.boxes[tid], cur.width, cur.height)
            if moved:
                sentences.append(f"{who} {moved}, to {where(cur.boxes[tid], cur.width, cur.height)}.")
            else:
                sentences.append(f"{who} stays in {where(cur.boxes[tid], cur.width, cur.height)}.")
    return " ".join(sentences) if sentences else "No tracked object is visible in either keyframe."


@rule("merge")
def merge(ctx: dict[str, Any]) -> str:
    different, attention_text = ctx.get("different", ""), ctx.get("attention", "")
    return f"{different} {attention_text}".strip()


@rule("scene_split")
def scene_split(ctx: dict[str, Any]) -> str:
    video: VideoFacts = ctx["video"]
    scenes = []
    for a, b in _shots(video):
        labels = sorted({video.label(t) for t in _objects_in(video.keyframes[a:b + 1])})
        hint = f"shot with {', '.join(labels)}" if labels else "shot without tracked objects"
        note = "continuous shot; starts at a hard cut" if a > 0 else "continuous shot; the video opens on it"
        scenes.append({"start": a, "end": b, "scene_hint": hint, "camera_note": note})
    return json.dumps({"scenes": scenes})


@rule("scene_caption")
def scene_caption(ctx: dict[str, Any]) -> str:
    captions = [c["text"] for c in ctx["captions"]]
    lead = f"Scene {ctx['scene_index'] + 1} (keyframes {ctx['start']} to {ctx['end']}, {ctx['scene_hint']})."
    return " ".join([lead, *captions])
