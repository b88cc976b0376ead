"""CaptionBridge over a whole shard, one dependency level at a time.

Every level sends the requests of all videos of the shard to the engine together:
overviews -> attention + differential -> merges (caption stage), then scene splits -> scene
captions in rounds (bridge stage; round i holds scene i of every video, so each video's scenes
stay sequential for continuity). A video whose request fails is dropped from later levels and
reported once with its reason.
"""

from __future__ import annotations

from typing import Any

from ..language import prompts
from ..language.levels import LevelRunner
from ..language.types import LLMRequest, LLMResponse
from ..language.video_facts import VideoFacts
from . import rules  # noqa: F401 - registers the rules answers of these tasks
from .scenes import SceneSplit, repair_scenes, split_max_tokens, split_schema, strip_ids

CAPTION_PROMPTS = ("overview", "overview_merge", "attention", "differential", "merge")
BRIDGE_PROMPTS = ("scene_split", "scene_caption")


def _request(task: str, key: tuple[Any, ...], images: list[Any] | None = None, **context: Any) -> LLMRequest:
    return LLMRequest(task=task, prompt=prompts.render(task, **context), images=images or [],
                      context=context, prompt_version=prompts.prompt_version(task), key=key)


def _overview_image(path: str, side: int) -> Any:
    """A keyframe as the overview sees it: the whole picture at a modest size (the overview needs
    every keyframe of the video in one context, not fine detail)."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
    img.thumbnail((side, side))
    return img


# -- caption stage ---------------------------------------------------------------------------


def overview_parts(num_keyframes: int, max_images: int) -> list[list[int]]:
    """Consecutive keyframe groups of at most ``max_images``: one overview request each."""
    return [list(range(a, min(a + max_images, num_keyframes))) for a in range(0, num_keyframes, max_images)]


def overview_requests(videos: list[VideoFacts], max_images: int, image_side: int = 448) -> list[LLMRequest]:
    """The overview sees every keyframe. A video with more keyframes than one request may carry
    is described in consecutive parts (each with its absolute keyframe ranges), joined later."""
    reqs = []
    for v in videos:
        parts = overview_parts(len(v.keyframes), max_images)
        for p, idxs in enumerate(parts):
            shown = [v.keyframes[i] for i in idxs]
            reqs.append(_request(
                "overview", (v.video_id, p), [_overview_image(k.image_path, image_side) for k in shown], video=v,
                shown=[{"index": k.index, "t": k.timestamp_s} for k in shown], part=p, parts=len(parts),
                duration_s=v.duration_s, cut_keyframes=v.cut_keyframes,
            ))
    return reqs


def _overviews(videos: list[VideoFacts], runner: LevelRunner, max_images: int, image_side: int) -> dict[str, LLMResponse]:
    """One overview per video: directly, or from its parts joined by a text-only request."""
    by_video: dict[str, dict[int, LLMResponse]] = {}
    for r in runner.run(overview_requests(videos, max_images, image_side)):
        if r.ok:
            by_video.setdefault(r.request.key[0], {})[r.request.key[1]] = r
    videos = runner.alive(videos)
    out = {v.video_id: by_video[v.video_id][0] for v in videos if len(by_video[v.video_id]) == 1}
    joins = [_request("overview_merge", (v.video_id,), video=v, duration_s=v.duration_s,
                      parts=[{"first": r.request.context["shown"][0]["index"], "last": r.request.context["shown"][-1]["index"],
                              "text": r.text} for _, r in sorted(by_video[v.video_id].items())])
             for v in videos if len(by_video[v.video_id]) > 1]
    for r in runner.run(joins):
        if r.ok:
            parts = by_video[r.request.key[0]].values()
            r.prompt_tokens += sum(p.prompt_tokens for p in parts)
            r.completion_tokens += sum(p.completion_tokens for p in parts)
            r.latency_s += sum(p.latency_s for p in parts)
            out[r.request.key[0]] = r
    return out


def local_requests(videos: list[VideoFacts], overviews: dict[str, str]) -> list[LLMRequest]:
    """Attention for every keyframe, differential for every keyframe but the first."""
    reqs = []
    for v in videos:
        for k in v.keyframes:
            labels = [(tid, v.label(tid)) for tid in sorted(k.boxes)]
            reqs.append(_request("attention", (v.video_id, k.index), [k.image_path, k.marked_path], video=v,
                                 overview=overviews[v.video_id], index=k.index, width=k.width, height=k.height,
                                 boxes_json=k.boxes_json, labels=labels))
            if k.index > 0:
                p = v.keyframes[k.index - 1]
                reqs.append(_request("differential", (v.video_id, k.index), [p.marked_path, k.marked_path], video=v,
                                     overview=overviews[v.video_id], index=k.index, prev_index=p.index,
                                     prev_boxes_json=p.boxes_json, boxes_json=k.boxes_json))
    return reqs


def caption_shard(videos: list[VideoFacts], runner: LevelRunner, max_images: int,
                  image_side: int = 448) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Overview and local-caption rows for every video that goes through."""
    ov = _overviews(videos, runner, max_images, image_side)
    videos = runner.alive(videos)
    texts = {vid: r.text for vid, r in ov.items()}
    local: dict[tuple[str, int, str], LLMResponse] = {}
    for r in runner.run(local_requests(videos, texts)):
        local[(r.request.key[0], r.request.key[1], r.request.task)] = r
    videos = runner.alive(videos)
    merge_reqs = [
        _request("merge", (v.video_id, k.index), index=k.index, overview=texts[v.video_id],
                 different=local[(v.video_id, k.index, "differential")].text,
                 attention=local[(v.video_id, k.index, "attention")].text)
        for v in videos for k in v.keyframes if k.index > 0
    ]
    merged = {(r.request.key[0], r.request.key[1]): r for r in runner.run(merge_reqs)}
    videos = runner.alive(videos)

    overview_rows = [{"video_id": v.video_id, "overview_caption": ov[v.video_id].text, **ov[v.video_id].provenance()}
                     for v in videos]
    local_rows: list[dict[str, Any]] = []
    for v in videos:
        for k in v.keyframes:
            att = local[(v.video_id, k.index, "attention")]
            if k.index == 0:
                # The first keyframe has no predecessor: no differential call. As in the method's
                # records, its "different" and "merged" entries repeat the attention caption (no
                # model call: the attention row carries the tokens, the copies carry none).
                copy = {**att.provenance(), "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0}
                rows = [("different", att.text, copy), ("attention", att.text, att.provenance()),
                        ("merged", att.text, copy)]
            else:
                d, m = local[(v.video_id, k.index, "differential")], merged[(v.video_id, k.index)]
                rows = [("different", d.text, d.provenance()), ("attention", att.text, att.provenance()),
                        ("merged", m.text, m.provenance())]
            for stream, text, prov in rows:
                local_rows.append({"video_id": v.video_id, "keyframe_index": k.index, "stream": stream,
                                   "text": text, **prov})
    return overview_rows, local_rows


# -- bridge stage ----------------------------------------------------------------------------


def bridge_shard(
    videos: list[VideoFacts],
    overviews: dict[str, str],
    merged: dict[str, list[str]],
    runner: LevelRunner,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scene and video-caption rows for every video that goes through."""
    ov_clean = {vid: strip_ids(t) for vid, t in overviews.items()}
    captions = {vid: [{"index": i, "text": strip_ids(t)} for i, t in enumerate(texts)] for vid, texts in merged.items()}
    split_reqs = []
    for v in videos:
        req = _request("scene_split", (v.video_id,), video=v, overview=ov_clean[v.video_id],
                       captions=captions[v.video_id], last_index=len(v.keyframes) - 1, cut_keyframes=v.cut_keyframes)
        req.json_schema = split_schema(len(v.keyframes))
        req.max_tokens = split_max_tokens(len(v.keyframes), runner.answer_token_cap)
        split_reqs.append(req)
    plans: dict[str, tuple[list[Any], LLMResponse]] = {}
    for r in runner.run(split_reqs, [SceneSplit] * len(split_reqs)):
        if not r.ok:
            continue
        v = r.request.context["video"]
        try:
            spans, notes = repair_scenes(r.parsed, len(v.keyframes), v.cut_keyframes)
        except Exception as exc:  # VideoFailure with its reason
            runner.fail(v.video_id, getattr(exc, "reason", "invalid_scene_split"), str(exc))
            continue
        if notes:
            r.error_detail = "; ".join(notes)  # kept for the log; the repaired split is used
        plans[v.video_id] = (spans, r)
    videos = runner.alive(videos)

    done: dict[str, list[LLMResponse]] = {v.video_id: [] for v in videos}
    rounds = max((len(plans[v.video_id][0]) for v in videos), default=0)
    for i in range(rounds):
        reqs = []
        for v in runner.alive(videos):
            spans = plans[v.video_id][0]
            if i >= len(spans):
                continue
            s = spans[i]
            reqs.append(_request(
                "scene_caption", (v.video_id, i), overview=ov_clean[v.video_id],
                previous=[strip_ids(p.text) for p in done[v.video_id]], scene_index=i, start=s.start, end=s.end,
                scene_hint=s.scene_hint, camera_note=s.camera_note,
                captions=captions[v.video_id][s.start:s.end + 1],
            ))
        for r in runner.run(reqs):
            if r.ok:
                done[r.request.key[0]].append(r)
    videos = runner.alive(videos)

    scene_rows, video_rows = [], []
    for v in videos:
        spans, split_resp = plans[v.video_id]
        texts = [strip_ids(r.text) for r in done[v.video_id]]
        for i, (s, r) in enumerate(zip(spans, done[v.video_id])):
            scene_rows.append({"video_id": v.video_id, "scene_index": i, "frame_start": s.start, "frame_end": s.end,
                               "scene_hint": strip_ids(s.scene_hint), "camera_note": strip_ids(s.camera_note),
                               "caption": texts[i], **r.provenance()})
        prov = done[v.video_id][-1].provenance() if done[v.video_id] else split_resp.provenance()
        prov["prompt_tokens"] = split_resp.prompt_tokens + sum(r.prompt_tokens for r in done[v.video_id])
        prov["completion_tokens"] = split_resp.completion_tokens + sum(r.completion_tokens for r in done[v.video_id])
        prov["latency_s"] = split_resp.latency_s + sum(r.latency_s for r in done[v.video_id])
        video_rows.append({"video_id": v.video_id, "caption": "\n".join(texts), "num_scenes": len(spans), **prov})
    return scene_rows, video_rows
