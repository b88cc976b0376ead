"""Asking the judge: one request per question and repeat, sent through the engine layer in batches.

The judge sees the caption, the question and options A-D plus "E. Not enough information"; a
scene question also carries the target scene's hint and its neighbours' hints so the judge can
find the scene in the caption. The answer is constrained to a small JSON object (the engine's
structured output) and validated strictly: one letter A-E, nothing else. Answers that do not
validate are re-sent (``structured_retries``) and, if still bad, recorded as unparsable votes
with the model's text, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..language import Engine, LLMRequest, complete
from ..language.prompts import prompt_version, render
from .questions import Question

log = logging.getLogger(__name__)

JUDGE_TASK = "judge"
JUDGE_LETTERS = ("A", "B", "C", "D", "E")
PROMPTS = ("judge_scene", "judge_video")
E_OPTION = "E. Not enough information in the description"


class JudgeAnswer(BaseModel):
    """The judge's reply. ``reason`` first: a model that explains before it picks answers better."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=400)
    answer: Literal["A", "B", "C", "D", "E"]


@dataclass(frozen=True)
class JudgeItem:
    """One question put to the judge with the caption it is answered from."""

    question: Question
    caption: str
    scene_context: dict[str, str] = field(default_factory=dict)  # scene/previous/next hints


@dataclass
class Vote:
    """One repeat of one question: the letter, or why there is none."""

    item: JudgeItem
    repeat: int
    letter: str | None
    error: str | None = None
    detail: str = ""
    text: str = ""
    attempts: int = 1
    provenance: dict[str, Any] = field(default_factory=dict)


def judge_request(item: JudgeItem, repeat: int) -> LLMRequest:
    q = item.question
    name = "judge_scene" if q.is_scene_question else "judge_video"
    context: dict[str, Any] = {"caption": item.caption, "question": q.question, "options": list(q.options),
                               "dimension": q.dimension, **item.scene_context}
    return LLMRequest(task=JUDGE_TASK, prompt=render(name, **context), context=context,
                      prompt_version=prompt_version(name), key=repeat)


def ask(engine: Engine, items: Sequence[JudgeItem], *, repeats: int = 3, structured_retries: int = 2,
        batch_size: int = 2048) -> list[Vote]:
    """Every item ``repeats`` times; requests go to the engine ``batch_size`` at a time (each
    batch's malformed answers are retried together). Votes come back item by item, repeat by repeat."""
    pairs = [(item, r) for item in items for r in range(repeats)]
    votes: list[Vote] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        requests = [judge_request(item, r) for item, r in chunk]
        responses = complete(engine, requests, [JudgeAnswer] * len(requests), structured_retries=structured_retries)
        for (item, r), resp in zip(chunk, responses):
            parsed = resp.parsed if isinstance(resp.parsed, JudgeAnswer) else None
            votes.append(Vote(item, r, parsed.answer if parsed is not None and resp.ok else None, resp.error,
                              resp.error_detail, resp.text[:2000], resp.attempts, resp.provenance()))
        log.info("judge: %d of %d requests answered", len(votes), len(pairs))
    return votes
