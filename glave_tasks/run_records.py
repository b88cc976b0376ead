"""Run tables -> per-video GLaVE-1.2M records (the export format, and what validate judges).

The tables come from :meth:`glave_tasks.run.Run.tables` (a whole run) or from one shard (validate).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from .language.video_facts import group_rows
from .quality.record_format import Record, qa_entry


def _qa_map(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: (int(r["qa_id"].rsplit("-", 1)[1]) if r["qa_id"].rsplit("-", 1)[-1].isdigit() else 0, r["qa_id"]))
    return {str(i): qa_entry(r["question"], r["answer"], r["dimension"], r["options"], r["answer_choice"])
            for i, r in enumerate(rows)}


def build_records(tables: dict[str, pa.Table], video_ids: list[str] | None = None) -> list[Record]:
    """One record per video that has captions, scenes and a video caption."""
    local = group_rows(tables["local_captions"])
    overviews = {r["video_id"]: r["overview_caption"] for r in tables["overviews"].to_pylist()}
    captions = {r["video_id"]: r["caption"] for r in tables["video_captions"].to_pylist()}
    scenes = group_rows(tables["scenes"])
    keyframes = group_rows(tables["keyframes"])
    qa = group_rows(tables["qa"])
    ids = video_ids if video_ids is not None else sorted(captions)
    records = []
    for vid in ids:
        if vid not in captions:
            continue
        n = len(keyframes.get(vid, [])) or 1 + max((r["keyframe_index"] for r in local.get(vid, [])), default=-1)
        streams: dict[str, list[str]] = {s: [""] * n for s in ("different", "attention", "merged")}
        for r in local.get(vid, []):
            if 0 <= r["keyframe_index"] < n:
                streams[r["stream"]][r["keyframe_index"]] = r["text"]
        scene_qa: dict[int, list[dict[str, Any]]] = defaultdict(list)
        general: list[dict[str, Any]] = []
        for r in qa.get(vid, []):
            (general if r["scene_index"] is None else scene_qa[r["scene_index"]]).append(r)
        scene_list = {}
        for i, s in enumerate(sorted(scenes.get(vid, []), key=lambda r: r["scene_index"])):
            scene_list[str(i)] = {"frame_range": [s["frame_start"], s["frame_end"]], "scene_hint": s["scene_hint"],
                                  "caption": s["caption"], "QA_pair": _qa_map(scene_qa.get(s["scene_index"], []))}
        records.append(Record(vid, {
            "different": streams["different"], "attention": streams["attention"], "merged": streams["merged"],
            "overview_caption": overviews.get(vid, ""), "scene_list": scene_list,
            "general_qa": _qa_map(general), "caption": captions[vid],
        }))
    return records


def tracker_facts(tables: dict[str, pa.Table]) -> tuple[dict[str, set[int]], dict[str, set[str]]]:
    """Per video: track IDs shown to the captioner (Set-of-Mark) and every detector/tracker label."""
    ids: dict[str, set[int]] = defaultdict(set)
    for r in tables["marks"].select(["video_id", "object_ids"]).to_pylist():
        ids[r["video_id"]].update(r["object_ids"] or [])
    labels: dict[str, set[str]] = defaultdict(set)
    for r in tables["tracks"].select(["video_id", "label"]).to_pylist():
        labels[r["video_id"]].add(r["label"])
    return dict(ids), dict(labels)
