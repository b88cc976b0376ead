"""The scene split's output model, its validation and its repair."""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import VideoFailure


class SceneSpan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: int = Field(ge=0, le=9999)
    end: int = Field(ge=0, le=9999)
    scene_hint: str = Field(max_length=80)
    camera_note: str = Field(max_length=60)


class SceneSplit(BaseModel):
    """What the scene-split prompt must answer (its JSON schema constrains the engine)."""

    model_config = ConfigDict(extra="forbid")
    scenes: list[SceneSpan] = Field(min_length=1, max_length=48)


def split_schema(num_keyframes: int) -> dict[str, Any]:
    """SceneSplit's JSON schema tightened to one video: indices within its keyframes, at most
    one scene per keyframe. The engine cannot emit an out-of-range index or an endless list."""
    schema = copy.deepcopy(SceneSplit.model_json_schema())
    schema["properties"]["scenes"]["maxItems"] = max(1, num_keyframes)
    span = schema["$defs"]["SceneSpan"]["properties"]
    for key in ("start", "end"):
        span[key]["maximum"] = max(0, num_keyframes - 1)
    return schema


def split_max_tokens(num_keyframes: int, cap: int) -> int:
    """A token budget for the longest answer the tightened schema allows (a character can take
    several byte-level tokens), within ``cap`` (the engine's context share for the answer)."""
    span = SceneSpan.model_fields
    chars = span["scene_hint"].metadata[0].max_length + span["camera_note"].metadata[0].max_length
    return int(min(cap, 64 + max(1, num_keyframes) * (3 * chars + 64)))


def repair_scenes(split: SceneSplit, num_keyframes: int, cut_keyframes: list[int]) -> tuple[list[SceneSpan], list[str]]:
    """Scenes that cover keyframes 0..n-1 in order with no gap or overlap, and start at every cut.

    Out-of-range ends are clipped, reversed ranges swapped, overlaps cut, gaps closed by extending
    the earlier scene, and a scene that spans a shot cut is split there (a cut always starts a
    scene). Returns the scenes and a note per repair; raises when nothing usable is left.
    """
    if num_keyframes < 1:
        raise VideoFailure("invalid_scene_split", "video has no keyframes")
    last = num_keyframes - 1
    notes: list[str] = []
    spans = []
    for s in split.scenes:
        a, b = min(s.start, s.end), max(s.start, s.end)
        if (a, b) != (s.start, s.end):
            notes.append(f"reversed range {s.start}-{s.end}")
        if a > last:
            notes.append(f"dropped range {a}-{b} past the last keyframe {last}")
            continue
        if b > last:
            notes.append(f"clipped range {a}-{b} to {last}")
            b = last
        spans.append(s.model_copy(update={"start": a, "end": b}))
    if not spans:
        raise VideoFailure("invalid_scene_split", f"no scene range falls inside keyframes 0-{last}")
    spans.sort(key=lambda s: (s.start, s.end))
    out: list[SceneSpan] = []
    expected = 0
    for s in spans:
        if s.end < expected:
            notes.append(f"dropped range {s.start}-{s.end} inside an earlier scene")
            continue
        if s.start != expected:
            notes.append(f"moved start of {s.start}-{s.end} to {expected}")
            s = s.model_copy(update={"start": expected})
        out.append(s)
        expected = s.end + 1
    if out[-1].end != last:
        notes.append(f"extended the last scene to keyframe {last}")
        out[-1] = out[-1].model_copy(update={"end": last})
    split_at = []
    for s in out:
        inner = [c for c in cut_keyframes if s.start < c <= s.end]
        bounds = [s.start, *inner, s.end + 1]
        for a, b in zip(bounds, bounds[1:]):
            split_at.append(s.model_copy(update={"start": a, "end": b - 1}))
        if inner:
            notes.append(f"split {s.start}-{s.end} at shot cuts {inner}")
    return split_at, notes


# Every way models write an object's number: "(ID=3)", "(ID: 3)", "(id 3)", "[ID=3]",
# "(IDs 3 and 4)", "(ID=3, ID=4)", "ID 3", "ID#3", "object 3", "Object #3", "#3", "(#3)", and a
# bare "(3)" right after a word.
_ID_TOKEN = r"IDs?\s*(?:[=:#]\s*|\s+)?\d+"
_ID_LIST = rf"{_ID_TOKEN}(?:\s*(?:,|;|/|&|\band\b)\s*(?:{_ID_TOKEN}|#?\d+))*"
_ID_PATTERNS = [
    (re.compile(rf"\s*[(\[]\s*{_ID_LIST}\s*[)\]]", re.IGNORECASE), ""),
    (re.compile(r"(?<=[A-Za-z])\s*\(\s*#?\d+(?:\s*(?:,|and)\s*#?\d+)*\s*\)"), ""),
    (re.compile(r"\b(?:the\s+)?(object|obj\.?)\s*#?\s*\d+\b", re.IGNORECASE), "<object>"),
    (re.compile(rf"(?:(\w+)|([^\w\s]))?(\s*)\b{_ID_LIST}\b", re.IGNORECASE), "<bare>"),
    (re.compile(r"\s*(?<![\w&])#\d+\b"), ""),
]


def strip_ids(text: str) -> str:
    """Remove every object-number tag models write (scene captions and QA are read by people; the
    numbers only matched the marks on the frames). "object 3" becomes "the object"."""
    for pattern, repl in _ID_PATTERNS:
        if repl == "<object>":
            text = pattern.sub(lambda m: "The object" if m.group(0)[:1].isupper() else "the object", text)
        elif repl == "<bare>":
            text = pattern.sub(_bare_id, text)
        else:
            text = pattern.sub(repl, text)
    text = re.sub(r"[(\[]\s*[)\]]", "", text)  # brackets left empty
    text = re.sub(r"[ \t]+([,.;:!?)])", r"\1", text)
    text = re.sub(r"([(\[])[ \t]+", r"\1", text)
    text = re.sub(r",\s*,", ",", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


# Words after which a bare "ID 3" stands for the object itself rather than tagging a noun.
_NOT_NOUNS = {"and", "or", "but", "then", "while", "when", "as", "so", "with", "to", "of", "by", "from", "at",
              "on", "in", "near", "behind", "beside", "before", "after", "that", "where", "whom", "than"}


def _bare_id(m: re.Match[str]) -> str:
    """A bare "ID 3": dropped after the noun it tags ("the man ID 3 smiles"); where it stands for
    the object itself ("ID 3 walks", "then ID 4 follows"), it becomes "the object"."""
    word, punct, space = m.group(1), m.group(2), m.group(3)
    if word and word.lower() not in _NOT_NOUNS:
        return word
    before = word or punct or ""
    sentence_start = not before or before in ".!?"
    return f"{before}{space}{'The object' if sentence_start else 'the object'}"
