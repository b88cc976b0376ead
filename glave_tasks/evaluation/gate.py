"""The self-consistency gate of the validate stage.

A sample of the shard's own generated QA is put to the judge with the run's own caption, as the
benchmark protocol asks a caption's questions. A question the judge cannot answer correctly from
the caption the run wrote (E, or another letter) is *unsupported*: the QA was likely hallucinated
or the caption left out what the QA asks. The share of unsupported questions is the check's value
(``qa.self_consistency``; thresholds and blocking from ``evaluate.gate``, overridable like any
check under ``validate.checks``); counts go per dimension, and the flagged questions are listed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import GlaveConfig
from ..language import build_engine
from ..quality.record_format import Record
from ..quality.results import CheckResult
from ..quality.thresholds import CheckSpec
from .judge import JudgeItem, ask
from .questions import Question, from_records
from .scoring import UNPARSABLE, answers_from_votes

CHECK = "qa.self_consistency"
DESCRIPTION = "share of sampled QA that the judge cannot answer correctly from the run's own caption"


@dataclass
class GateOutcome:
    check: CheckResult
    sampled: int
    unsupported: list[dict[str, Any]] = field(default_factory=list)  # flagged QA: id, dimension, judged letter
    per_dimension: dict[str, dict[str, int]] = field(default_factory=dict)  # sampled / unsupported / e / wrong
    unparsable: int = 0
    judge: str = ""


def spec(config: GlaveConfig) -> CheckSpec:
    gate = config.evaluate.gate
    base = CheckSpec(CHECK, "qa", DESCRIPTION, warn=gate.warn, fail=gate.fail, critical=gate.critical)
    override = config.validate_.checks.get(CHECK)
    if override is not None:
        base = replace(base, **{f: getattr(override, f) for f in override.model_fields_set})
    return base


def sample(questions: Sequence[Question], size: int, seed: int) -> list[Question]:
    """A reproducible sample: the same shard and seed always give the same questions."""
    ordered = sorted(questions, key=lambda q: (q.video_id, q.question_id))
    if len(ordered) <= size:
        return ordered
    return sorted(random.Random(seed).sample(ordered, size), key=lambda q: (q.video_id, q.question_id))


def embedding_texts(records: Sequence[Record], config: GlaveConfig) -> dict[str, dict[str, list[str]]]:
    """Per video, per embedding model: what the embedded judge of the gate embeds for any of the
    records' questions (nothing when the gate is off or its judge is an LLM)."""
    gate = config.evaluate.gate
    if not gate.enabled or gate.judge.backend != "embedded":
        return {}
    from .embedded import judge_texts

    captions = {r.video_id: c if isinstance(c := r.data.get("caption"), str) else "" for r in records}
    out: dict[str, list[str]] = defaultdict(list)
    for q in from_records(records).questions:
        if captions.get(q.video_id, "").strip():
            out[q.video_id] += judge_texts(captions[q.video_id], q.question, q.options)
    return {vid: {gate.judge.embedding_model: list(dict.fromkeys(texts))} for vid, texts in out.items()}


def self_consistency(records: Sequence[Record], config: GlaveConfig, engine: Any = None) -> GateOutcome:
    """Judge a sample of the records' own QA from their own captions; the check and its counts."""
    gate = config.evaluate.gate
    check_spec = spec(config)
    qs = from_records(records)
    captions: dict[str, str] = {r.video_id: c if isinstance(c := r.data.get("caption"), str) else "" for r in records}
    candidates = [q for q in qs.questions if captions.get(q.video_id, "").strip()]
    chosen = sample(candidates, gate.sample_size, gate.seed)
    if not chosen:
        return GateOutcome(CheckResult.of(check_spec, None, "no QA with a caption to sample"), 0)
    own_engine = engine is None
    engine = engine or build_engine(gate.judge, cache_dir=config.store.local_cache, s3=config.store.s3)
    try:
        items = [JudgeItem(q, captions[q.video_id], qs.scene_context(q)) for q in chosen]
        votes = ask(engine, items, repeats=config.evaluate.repeats, structured_retries=gate.judge.structured_retries,
                    batch_size=config.evaluate.batch_size)
        judge = f"{engine.generator}:{engine.model_id}"
    finally:
        if own_engine:
            engine.close()
    answers = answers_from_votes(votes)
    per_dim: dict[str, dict[str, int]] = defaultdict(lambda: {"sampled": 0, "unsupported": 0, "e": 0, "wrong": 0})
    flagged: list[dict[str, Any]] = []
    unparsable = 0
    for a in answers:
        d = per_dim[a.question.dimension]
        d["sampled"] += 1
        if a.status == UNPARSABLE:
            unparsable += 1  # no verdict: neither supported nor unsupported
            continue
        if not a.correct:
            d["unsupported"] += 1
            d["e" if a.final == "E" else "wrong"] += 1
            flagged.append({"qa_id": a.question.question_id, "dimension": a.question.dimension,
                            "judged": a.final, "answer": a.question.answer})
    judged = len(answers) - unparsable
    value = len(flagged) / judged if judged else None
    dims = ", ".join(f"{k} {v['unsupported']}/{v['sampled']}" for k, v in sorted(per_dim.items()))
    detail = (f"{len(flagged)} of {judged} sampled QA unsupported by their caption ({judge}); "
              f"{unparsable} unparsable; per dimension: {dims}; flagged: "
              + ", ".join(f"{f['qa_id']} ({f['judged']} vs {f['answer']})" for f in flagged[:15])
              + (" ..." if len(flagged) > 15 else ""))
    return GateOutcome(CheckResult.of(check_spec, value, detail), len(answers), flagged, dict(per_dim), unparsable, judge)
