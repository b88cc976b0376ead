"""Rules answers of the QA tasks: QA written from track and ingest facts, so the embedded
default (no model) still yields checkable, correct QA. Registered with the rules engine."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from ..language.engines.rules import rule

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve"]
DIRECTIONS = ["to the left", "to the right", "upward", "downward"]
QUADRANTS = ["the upper left", "the upper right", "the lower left", "the lower right"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
MIN_MOVE = 0.08  # share of the frame an object must travel for its direction to be asked about


def _num(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def _plural(label: str) -> str:
    return label + ("es" if label.endswith(("s", "x", "sh", "ch")) else "s")


def _qa(dimension: str, question: str, answer: str, distractors: list[str]) -> dict[str, Any]:
    return {"dimension": dimension, "question": question, "answer": answer, "distractors": distractors[:3]}


def _count_distractors(n: int) -> list[str]:
    cands = [n + 1, n + 2, n - 1, n + 3]
    return [_num(c) for c in cands if c >= 0 and c != n][:3]


def direction_of(obj: dict[str, Any]) -> str | None:
    dx, dy = obj["dx"], obj["dy"]
    if max(abs(dx), abs(dy)) < MIN_MOVE or 0.6 < abs(dx) / max(abs(dy), 1e-9) < 1.6:
        return None  # too small, or diagonal: no single true answer
    if abs(dx) > abs(dy):
        return DIRECTIONS[0] if dx < 0 else DIRECTIONS[1]
    return DIRECTIONS[2] if dy < 0 else DIRECTIONS[3]


def quadrant_of(obj: dict[str, Any]) -> str | None:
    x, y = obj["start"]
    if abs(x - 0.5) < 0.08 or abs(y - 0.5) < 0.08:
        return None  # near the middle: ambiguous
    return QUADRANTS[(0 if y < 0.5 else 2) + (0 if x < 0.5 else 1)]


@rule("qa_scene")
def scene_qa(ctx: dict[str, Any]) -> str:
    objs: list[dict[str, Any]] = ctx["objects"]
    labels = Counter(o["label"] for o in objs)
    unique = [o for o in objs if labels[o["label"]] == 1]
    out: list[dict[str, Any]] = []
    if labels:
        label, n = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        out.append(_qa("Count", f"How many {_plural(label)} can be seen in this scene?", _num(n), _count_distractors(n)))
    moving = [(o, d) for o in unique if (d := direction_of(o))]
    if moving:
        o, d = max(moving, key=lambda od: od[0]["speed"])
        out.append(_qa("Object Direction", f"In which direction does the {o['label']} move in this scene?", d,
                       [x for x in DIRECTIONS if x != d]))
    placed = [(o, q) for o in unique if (q := quadrant_of(o))]
    if placed:
        o, q = placed[0]
        out.append(_qa("Spatial", f"In which part of the frame is the {o['label']} when this scene begins?", q,
                       [x for x in QUADRANTS if x != q]))
    movers = sorted(unique, key=lambda o: -o["speed"])
    if len(movers) >= 2 and movers[0]["speed"] > 1.5 * movers[1]["speed"] and direction_of(movers[0]):
        others = [f"the {o['label']}" for o in movers[1:]] + ["none of them moves"]
        out.append(_qa("Speed", "Which object moves fastest in this scene?", f"the {movers[0]['label']}", others))
    hints = [h for h in ctx.get("other_hints", []) if h and h != ctx["scene_hint"]]
    if ctx["scene_hint"] and len(set(hints)) >= 3:
        out.append(_qa("Description-Scene", "Which description best fits this scene?", ctx["scene_hint"],
                       sorted(set(hints), key=_stable)[:3]))
    return json.dumps({"qa": out})


@rule("qa_video")
def video_qa(ctx: dict[str, Any]) -> str:
    cap = int(ctx["max_per_dimension"])
    scenes: list[dict[str, Any]] = ctx["scenes"]
    out: list[dict[str, Any]] = []
    n = len(ctx["cut_keyframes"])
    temporal = [_qa("Temporal", "How many hard shot cuts does the video contain?", _num(n), _count_distractors(n))]
    if len(scenes) >= 2:
        first: dict[str, int] = {}
        for s in scenes:
            for label in s["labels"]:
                first.setdefault(label, s["index"])
        for label, idx in sorted(first.items()):
            if idx < len(ORDINALS):
                wrong = [f"the {ORDINALS[i]} scene" for i in range(min(len(scenes), len(ORDINALS))) if i != idx]
                wrong += [f"the {ORDINALS[i]} scene" for i in range(len(scenes), len(ORDINALS))]
                temporal.append(_qa("Temporal", f"In which scene does a {label} appear for the first time?",
                                    f"the {ORDINALS[idx]} scene", wrong[:3]))
    out += temporal[:cap]
    order: list[Any] = []
    for i, a in enumerate(scenes):
        for b in scenes[i + 1:]:
            if a["hint"] and b["hint"] and a["hint"] != b["hint"]:
                later, earlier = (b, a) if len(order) % 2 == 0 else (a, b)
                answer = "after" if later["index"] > earlier["index"] else "before"
                order.append(_qa("Time Order",
                                 f"Does the scene described as \"{later['hint']}\" come before or after the scene described as \"{earlier['hint']}\"?",
                                 answer, ["before" if answer == "after" else "after", "at the same time", "it is not in the video"]))
    out += order[:cap]
    return json.dumps({"qa": out})


@rule("qa_refine")
def refine(ctx: dict[str, Any]) -> str:
    # Rules questions are atomic by construction; drop only what has no answer.
    q, a = str(ctx["question"]).strip(), str(ctx["answer"]).strip()
    return json.dumps({"questions": [{"question": q, "answer": a}] if q and a else []})


def _stable(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@rule("qa_options")
def options(ctx: dict[str, Any]) -> str:
    wrong = [d for d in dict.fromkeys(ctx.get("distractors") or []) if d != ctx["answer"]][:3]
    if len(wrong) < 3:
        return json.dumps({"error": "not enough distractors"})  # fails validation: recorded, not invented
    opts = sorted([ctx["answer"], *wrong], key=lambda o: _stable(ctx["question"] + o))
    return json.dumps({"options": opts, "answer_choice": "ABCD"[opts.index(ctx["answer"])]})
