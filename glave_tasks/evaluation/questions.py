"""Question sets: the public benchmark's annotation files, or the QA a run wrote into its records.

Benchmark annotation format (one JSON file per video, named ``<video id>.json``)::

    {"scene_hint": {"0": "one sentence locating scene 0", "1": ...},
     "qa": {"<id>": {"id": "<id>", "scene": "0" | 0 | "-1", "dimension": "Count",
                     "question": "...", "options": ["A. ...", "B. ...", "C. ...", "D. ..."],
                     "answer": "C"}, ...}}

Scene ``-1`` means the whole video; the published files write the scene as a string or an int,
both are accepted. An entry that cannot be asked (not four options, no answer letter, a scene
with no hint) is not dropped: it becomes a :class:`Skipped` row with its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import S3Options
from ..errors import GlaveError
from ..quality.record_format import Record

LETTERS = ("A", "B", "C", "D")
WHOLE_VIDEO = -1
_OPTION_PREFIX = re.compile(r"^\s*([A-Da-d])\s*[.)]\s*")


@dataclass(frozen=True)
class Question:
    video_id: str  # the benchmark file's stem, or the record's video id
    question_id: str
    scene: int  # scene index, or -1 for the whole video
    dimension: str
    question: str
    options: tuple[str, ...]  # four option texts written "A. ...", "B. ...", ...
    answer: str  # A-D

    @property
    def is_scene_question(self) -> bool:
        return self.scene != WHOLE_VIDEO


@dataclass(frozen=True)
class Skipped:
    """A question that was not scored, and why (``invalid_question``, ``video_not_in_run``, ...)."""

    video_id: str
    question_id: str
    dimension: str
    reason: str
    detail: str = ""


@dataclass
class QuestionSet:
    name: str  # "benchmark" or "self-qa"; part of the result location
    source: str  # where the questions came from (folder, s3:// prefix, run id)
    questions: list[Question] = field(default_factory=list)
    hints: dict[str, dict[int, str]] = field(default_factory=dict)  # video -> scene -> hint
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def video_ids(self) -> list[str]:
        return sorted({q.video_id for q in self.questions} | {s.video_id for s in self.skipped})

    def scene_context(self, q: Question) -> dict[str, str]:
        """Hints of the target scene and of its neighbours, for the judge to locate the scene."""
        if not q.is_scene_question:
            return {}
        hints = self.hints.get(q.video_id, {})
        return {"scene_hint": hints.get(q.scene, ""),
                "previous_hint": hints.get(q.scene - 1, "") or "(no scene before this one)",
                "next_hint": hints.get(q.scene + 1, "") or "(no scene after this one)"}


def normalise_options(options: Any) -> tuple[str, ...] | str:
    """Four options as ``"A. text"`` ... ``"D. text"``, or the reason they cannot be used."""
    if not isinstance(options, list) or len(options) != 4:
        return f"expected a list of 4 options, got {type(options).__name__} of {len(options) if isinstance(options, list) else 0}"
    out = []
    for letter, raw in zip(LETTERS, options):
        if not isinstance(raw, str) or not raw.strip():
            return f"option {letter} is empty or not text"
        m = _OPTION_PREFIX.match(raw)
        if m and m.group(1).upper() != letter:
            return f"option {letter} is labelled {m.group(1)!r}"
        text = raw[m.end():] if m else raw
        out.append(f"{letter}. {text.strip()}")
    return tuple(out)


def _scene_index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def parse_annotation(video_id: str, obj: Any, source: str) -> tuple[list[Question], dict[int, str], list[Skipped]]:
    """One benchmark annotation file's questions, scene hints and unusable entries."""
    if not isinstance(obj, dict) or not isinstance(obj.get("qa"), dict):
        raise GlaveError(f"{source}: not a benchmark annotation file (expected an object with a 'qa' mapping)")
    raw_hints = obj.get("scene_hint") or {}
    if not isinstance(raw_hints, dict):
        raise GlaveError(f"{source}: 'scene_hint' must map scene indices to sentences")
    hints = {i: str(h) for k, h in raw_hints.items() if (i := _scene_index(k)) is not None and isinstance(h, str)}
    questions: list[Question] = []
    skipped: list[Skipped] = []
    for key, entry in obj["qa"].items():
        qid = str(entry.get("id") or key) if isinstance(entry, dict) else str(key)
        problem, q = _question(video_id, qid, entry, hints)
        if q is None:
            dim = entry.get("dimension") if isinstance(entry, dict) else None
            skipped.append(Skipped(video_id, qid, str(dim or ""), "invalid_question", problem))
        else:
            questions.append(q)
    return questions, hints, skipped


def _question(video_id: str, qid: str, entry: Any, hints: dict[int, str]) -> tuple[str, Question | None]:
    if not isinstance(entry, dict):
        return "entry is not an object", None
    scene = _scene_index(entry.get("scene", WHOLE_VIDEO))
    if scene is None or scene < WHOLE_VIDEO:
        return f"scene {entry.get('scene')!r} is not a scene index", None
    if scene != WHOLE_VIDEO and scene not in hints:
        return f"scene {scene} has no scene_hint to locate it", None
    question, dimension = entry.get("question"), entry.get("dimension")
    if not isinstance(question, str) or not question.strip():
        return "no question text", None
    if not isinstance(dimension, str) or not dimension.strip():
        return "no dimension", None
    options = normalise_options(entry.get("options"))
    if isinstance(options, str):
        return options, None
    answer = str(entry.get("answer") or "").strip().upper().rstrip(".")
    if answer not in LETTERS:
        return f"answer {entry.get('answer')!r} is not a letter A-D", None
    return "", Question(video_id, qid, scene, dimension.strip(), question.strip(), options, answer)


def _annotation_files(uri: str, s3: S3Options | None) -> list[tuple[str, bytes]]:
    """(file stem, bytes) of every ``*.json`` under a local file/folder or an s3:// prefix."""
    if uri.startswith("s3://"):
        from ..store import filesystem_for

        fs, base = filesystem_for(uri, s3)
        try:
            found = sorted(p for p in fs.find(base) if p.endswith(".json"))
        except FileNotFoundError:
            found = []
        # Benchmark file names are YouTube ids ("-O6mJ0VBTc4"), not store-safe keys: the
        # listing is read as it is and never used to build a key.
        return [(PurePosixPath(p).stem, fs.cat_file(p)) for p in found]
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    if not path.exists():
        raise GlaveError(f"question set {uri}: no such file or folder")
    files = [path] if path.is_file() else sorted(path.rglob("*.json"))
    return [(f.stem, f.read_bytes()) for f in files]


def load_benchmark(uri: str, s3: S3Options | None = None) -> QuestionSet:
    """Every annotation file under a folder or s3:// prefix (or one file)."""
    qs = QuestionSet("benchmark", uri)
    files = _annotation_files(uri, s3)
    if not files:
        raise GlaveError(f"question set {uri}: no *.json annotation files found")
    for stem, data in files:
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GlaveError(f"{uri}: {stem}.json is not valid JSON ({exc})") from None
        questions, hints, skipped = parse_annotation(stem, obj, f"{uri} ({stem}.json)")
        qs.questions += questions
        qs.hints[stem] = hints
        qs.skipped += skipped
    return qs


def from_records(records: Iterable[Record], name: str = "self-qa") -> QuestionSet:
    """The records' own QA (``scene_list[*].QA_pair`` and ``general_qa``) as a question set."""
    qs = QuestionSet(name, "records")
    for rec in records:
        data = rec.data
        raw_scenes = data.get("scene_list")
        scenes: dict[Any, Any] = raw_scenes if isinstance(raw_scenes, dict) else {}
        hints: dict[int, str] = {}
        groups: list[tuple[int, str, Any]] = []
        for key, scene in scenes.items():
            idx = _scene_index(key)
            if idx is None or not isinstance(scene, dict):
                continue
            if isinstance(scene.get("scene_hint"), str):
                hints[idx] = scene["scene_hint"]
            groups.append((idx, f"scene{idx}", scene.get("QA_pair")))
        groups.append((WHOLE_VIDEO, "general", data.get("general_qa")))
        qs.hints[rec.video_id] = hints
        for scene_idx, scope, qa_map in groups:
            items = qa_map.items() if isinstance(qa_map, dict) else enumerate(qa_map or [])
            for key, qa in items:
                qid = f"{rec.video_id}/{scope}/{key}"
                entry = qa if isinstance(qa, dict) else None
                converted = None if entry is None else {
                    "scene": scene_idx, "question": entry.get("Question"), "dimension": entry.get("Dimension"),
                    "options": entry.get("Options"), "answer": entry.get("Answer_choices")}
                problem, q = _question(rec.video_id, qid, converted, hints)
                if q is None:
                    dim = entry.get("Dimension") if entry else None
                    qs.skipped.append(Skipped(rec.video_id, qid, str(dim or ""), "invalid_question", problem))
                else:
                    qs.questions.append(q)
    return qs
