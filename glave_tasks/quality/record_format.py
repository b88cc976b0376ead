"""Per-video records in the public GLaVE-1.2M sample format, and flat frames derived from them.

The export writes these records, ``glave audit`` reads them back from any JSON files, and the
quality checks run on the flat frames, so a run's own output and an external sample file are
judged by exactly the same code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GlaveError

RECORD_KEYS = ("different", "attention", "merged", "overview_caption", "scene_list", "general_qa", "caption")
QA_KEYS = ("Question", "Answer", "Dimension", "Options", "Answer_choices")
_RANGE = re.compile(r"^\s*\[?\s*(\d+)\s*[-,]\s*(\d+)\s*\]?\s*$")


@dataclass
class Record:
    video_id: str
    data: dict[str, Any]
    source: str = ""  # file the record came from (audit) or the run it was built from


def qa_entry(question: str, answer: str, dimension: str, options: list[str], answer_choice: str) -> dict[str, Any]:
    return {"Question": question, "Answer": answer, "Dimension": dimension, "Options": list(options),
            "Answer_choices": answer_choice}


def parse_frame_range(value: Any) -> tuple[int | None, int | None]:
    """``[a, b]`` or ``"[a - b]"`` -> (a, b); anything else -> (None, None)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    if isinstance(value, str) and (m := _RANGE.match(value)):
        return int(m.group(1)), int(m.group(2))
    return None, None


def option_text(option: Any) -> str:
    """The text of an option without its ``"A. "`` prefix."""
    text = str(option)
    return text[3:].strip() if re.match(r"^[A-Da-d][.)]\s", text) else text.strip()


# -- loading external files -----------------------------------------------------------------------


def _looks_like_record(obj: Any) -> bool:
    return isinstance(obj, dict) and "scene_list" in obj


def records_from_json(obj: Any, stem: str, source: str) -> list[Record]:
    """One file may hold a record, a list of records, or a mapping of id -> record."""
    if _looks_like_record(obj):
        return [Record(stem, obj, source)]
    if isinstance(obj, list) and obj and all(_looks_like_record(o) for o in obj):
        return [Record(f"{stem}-{i}", o, source) for i, o in enumerate(obj)]
    if isinstance(obj, dict) and obj and all(_looks_like_record(o) for o in obj.values()):
        return [Record(str(k), o, source) for k, o in obj.items()]
    raise GlaveError(f"{source}: not a GLaVE record (no 'scene_list'), a list of records or a mapping of records")


# Side files that exports and reports write beside records say so in this key; they are never
# taken for records, whatever their name (YouTube ids may start with '_' or '-').
SIDE_FILE_KEY = "glave_side_file"


def scan_paths(paths: Iterable[str | Path]) -> tuple[list[Record], list[dict[str, str]]]:
    """Records from JSON files and folders (searched recursively for ``*.json``), and one
    ``{path, reason, detail}`` for every file not taken: ``side_file`` (a dataset card or report
    summary), ``unreadable`` (not UTF-8 JSON, or unreadable), ``not_a_record``. Bad files never
    stop the scan: every other file is still read."""
    out: list[Record] = []
    skipped: list[dict[str, str]] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise GlaveError(f"no such file or folder: {path}")
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for f in files:
            if f.is_dir():
                skipped.append({"path": str(f), "reason": "not_a_file", "detail": "a folder named *.json"})
                continue
            try:
                data = f.read_bytes()
            except OSError as exc:
                skipped.append({"path": str(f), "reason": "unreadable", "detail": f"not readable JSON ({exc})"[:300]})
                continue
            found, why = read_record_file(data, f.stem, str(f))
            out.extend(found)
            if why is not None:
                skipped.append(why)
    return out, skipped


def read_record_file(data: bytes, stem: str, source: str) -> tuple[list[Record], dict[str, str] | None]:
    """The records in one JSON file's bytes, judged by content alone (never by its name), or
    ``{path, reason, detail}`` saying why it holds none (see ``scan_paths``)."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], {"path": source, "reason": "unreadable", "detail": f"not readable JSON ({exc})"[:300]}
    if isinstance(obj, dict) and SIDE_FILE_KEY in obj:
        return [], {"path": source, "reason": "side_file", "detail": f"a {obj[SIDE_FILE_KEY]}, not a record"}
    try:
        return records_from_json(obj, stem, source), None
    except GlaveError as exc:
        return [], {"path": source, "reason": "not_a_record", "detail": str(exc)[:300]}


def load_paths(paths: Iterable[str | Path]) -> list[Record]:
    """Records from JSON files and folders; an error when there are none (see ``scan_paths``)."""
    paths = list(paths)
    out, skipped = scan_paths(paths)
    if not out:
        why = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5])
        raise GlaveError(f"no JSON records found under {', '.join(map(str, paths))}" + (f" ({why})" if why else ""))
    return out


# -- flat frames ----------------------------------------------------------------------------------


def _qa_rows(video_id: str, scope: str, scene: int | None, qa_map: Any) -> list[dict[str, Any]]:
    rows = []
    items = qa_map.items() if isinstance(qa_map, dict) else enumerate(qa_map or [])
    for key, qa in items:
        qa = qa if isinstance(qa, dict) else {}
        options = qa.get("Options")
        options = list(options) if isinstance(options, list) else []
        choice = qa.get("Answer_choices")
        rows.append({
            "video_id": video_id, "qa_uid": f"{video_id}/{scope}/{key}", "scope": scope, "scene_index": scene,
            "dimension": qa.get("Dimension"), "question": qa.get("Question"), "answer": qa.get("Answer"),
            "options": [str(o) for o in options], "n_options": len(options),
            "answer_choice": str(choice).strip() if choice is not None else None,
        })
    return rows


def frames(records: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """Flat rows per record aspect: videos, captions, scenes, qa (plain dicts; pandas-ready)."""
    videos, captions, scenes, qa = [], [], [], []
    for rec in records:
        d, vid = rec.data, rec.video_id
        streams: dict[str, list[Any]] = {s: v if isinstance(v := d.get(s), list) else [] for s in ("different", "attention", "merged")}
        n_keyframes = len(streams["merged"])
        for stream, items in streams.items():
            for i, text in enumerate(items):
                if stream == "different" and i == 0:
                    continue  # the first keyframe has no previous frame: no differential caption
                captions.append({"video_id": vid, "kind": stream, "index": i, "text": text if isinstance(text, str) else None})
        for kind in ("overview_caption", "caption"):
            text = d.get(kind)
            captions.append({"video_id": vid, "kind": kind, "index": 0, "text": text if isinstance(text, str) else None})
        scene_list: dict[str, Any] = v if isinstance(v := d.get("scene_list"), dict) else {}
        n_qa = 0
        for key, scene in sorted(scene_list.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0):
            scene = scene if isinstance(scene, dict) else {}
            start, end = parse_frame_range(scene.get("frame_range"))
            idx = int(key) if str(key).isdigit() else -1
            scenes.append({"video_id": vid, "scene_index": idx, "frame_start": start, "frame_end": end,
                           "scene_hint": scene.get("scene_hint"), "caption": scene.get("caption"),
                           "n_keyframes": n_keyframes})
            captions.append({"video_id": vid, "kind": "scene", "index": idx,
                             "text": scene.get("caption") if isinstance(scene.get("caption"), str) else None})
            rows = _qa_rows(vid, f"scene{key}", idx, scene.get("QA_pair"))
            n_qa += len(rows)
            qa.extend(rows)
        rows = _qa_rows(vid, "general", None, d.get("general_qa"))
        qa.extend(rows)
        n_qa += len(rows)
        videos.append({
            "video_id": vid, "source": rec.source, "n_keyframes": n_keyframes, "n_scenes": len(scene_list), "n_qa": n_qa,
            "streams_aligned": len(streams["attention"]) == n_keyframes and len(streams["different"]) in (n_keyframes, max(n_keyframes - 1, 0)),
            "missing_keys": ",".join(k for k in RECORD_KEYS if k not in d),
        })
    for c in captions:
        c["chars"] = len(c["text"]) if isinstance(c["text"], str) else 0
    return {"videos": videos, "captions": captions, "scenes": scenes, "qa": qa}
