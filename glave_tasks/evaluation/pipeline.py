"""``glave evaluate``: score a run's captions (or exported / external records) with a judge.

    captions (run | records) + questions (benchmark folder | the records' own QA)
      -> judge requests (N repeats, batched) -> votes -> majority answers -> scores
      -> votes / answers / scores / skipped Parquet tables, summary.json, index.html
      -> comparison with a baseline evaluation (regression beyond evaluate.regression_margin)

Results of a run go to ``runs/<run>/evaluation/<question set>/``; of external records, to ``--out``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import __version__, schemas
from ..config import GlaveConfig, JudgeConfig
from ..errors import GlaveError
from ..keys import join_key, safe_segment
from ..language import build_engine
from ..language.prompts import versions
from ..layout import RunLayout
from ..store import ArtifactStore, open_store
from . import embedded
from .judge import PROMPTS, JudgeItem, Vote, ask
from .questions import QuestionSet, Skipped, from_records, load_benchmark
from .scoring import Answer, answers_from_votes, compare, headline, score_rows
from .sources import CaptionSource, from_path, from_run

log = logging.getLogger(__name__)

EVALUATION_DIR = "evaluation"


class RegressionDetected(GlaveError):
    """Accuracy dropped against the baseline by more than the configured margin."""


@dataclass(frozen=True)
class Target:
    """Where an evaluation's results live: a store and a key prefix in it."""

    store: ArtifactStore
    prefix: str

    def key(self, name: str) -> str:
        return join_key(self.prefix, name) if self.prefix else name


def run_target(store: ArtifactStore, run_id: str, name: str) -> Target:
    return Target(store, join_key(RunLayout(run_id).prefix, EVALUATION_DIR, safe_segment(name)))


def judge_label(judge: JudgeConfig, model_id: str | None) -> str:
    if judge.backend == "embedded":
        return f"{embedded.LABEL} [{model_id}]"
    return f"{judge.backend} LLM judge {model_id}" + (f"@{judge.revision}" if judge.revision else "")


def judge_info(judge: JudgeConfig, engine: Any, repeats: int) -> dict[str, Any]:
    return {"backend": judge.backend, "generator": engine.generator, "model_id": engine.model_id,
            "model_revision": engine.model_revision, "embedded": judge.backend == "embedded",
            "label": judge_label(judge, engine.model_id), "repeats": repeats,
            "prompt_versions": versions(*PROMPTS),
            **({"margin": judge.margin, "floor": judge.floor} if judge.backend == "embedded" else {})}


def split_questions(qs: QuestionSet, source: CaptionSource) -> tuple[list[JudgeItem], list[Skipped]]:
    """Items to judge, and the questions whose video the captions do not have (reported)."""
    items, missing = [], []
    for q in qs.questions:
        rec = source.find(q.video_id)
        caption = source.caption(q.video_id)
        if rec is None:
            missing.append(Skipped(q.video_id, q.question_id, q.dimension, "video_not_in_run",
                                   f"no caption for video {q.video_id!r} in {source.description}"))
        elif not caption.strip():
            missing.append(Skipped(q.video_id, q.question_id, q.dimension, "empty_caption",
                                   f"video {q.video_id!r} has an empty caption"))
        else:
            items.append(JudgeItem(q, caption, qs.scene_context(q)))
    return items, missing


def _vote_rows(votes: list[Vote]) -> list[dict[str, Any]]:
    return [{"video_id": v.item.question.video_id, "question_id": v.item.question.question_id, "repeat": v.repeat,
             "letter": v.letter, "error": v.error, "error_detail": v.detail[:2000] or None, "text": v.text,
             "attempts": v.attempts, **v.provenance} for v in votes]


def _answer_rows(answers: list[Answer], label: str) -> list[dict[str, Any]]:
    return [{"video_id": a.question.video_id, "question_id": a.question.question_id, "scene": a.question.scene,
             "dimension": a.question.dimension, "answer": a.question.answer, "final": a.final, "status": a.status,
             "correct": a.correct, "tie": a.tie, "votes": [v or "" for v in a.votes], "judge": label} for a in answers]


def _skipped_rows(skipped: list[Skipped]) -> list[dict[str, Any]]:
    return [{"video_id": s.video_id, "question_id": s.question_id, "dimension": s.dimension, "reason": s.reason,
             "detail": s.detail} for s in skipped]


def find_baseline(store: ArtifactStore, run_id: str | None, name: str, baseline_run_id: str | None) -> dict[str, Any] | None:
    """The baseline evaluation summary: the named run's, or the latest other run's with this question set."""
    if baseline_run_id:
        key = run_target(store, baseline_run_id, name).key("summary.json")
        if not store.exists(key):
            raise GlaveError(f"baseline run {baseline_run_id!r} has no {name!r} evaluation ({store.uri(key)})")
        summary: dict[str, Any] = store.read_json(key)
        return summary
    found = []
    for other in store.list_dirs("runs"):
        if run_id is not None and other == RunLayout(run_id).run_segment:
            continue
        key = join_key("runs", other, EVALUATION_DIR, safe_segment(name), "summary.json")
        if store.exists(key):
            found.append(store.read_json(key))
    found.sort(key=lambda s: (s.get("created_at") or "", s.get("run_id") or ""))
    return found[-1] if found else None


def evaluate(store: ArtifactStore, config: GlaveConfig, *, run_id: str | None = None, records: str | None = None,
             questions: str | None = None, name: str | None = None, out: str | None = None,
             baseline_run_id: str | None = None, repeats: int | None = None, engine: Any = None) -> dict[str, Any]:
    """Evaluate, write the result tables and summary, compare with a baseline; returns the summary.

    ``engine`` overrides the configured judge (the benchmark script and tests pass one in)."""
    if (run_id is None) == (records is None):
        raise GlaveError("evaluate needs exactly one of a run id or a records folder/URI")
    ev = config.evaluate
    source = from_run(store, run_id) if run_id is not None else from_path(str(records), config.store.s3)
    question_uri = questions if questions is not None else ev.questions
    qs = load_benchmark(question_uri, config.store.s3) if question_uri else from_records(source.records.values())
    name = safe_segment(name or qs.name)
    if run_id is not None and out is None:
        target = run_target(store, run_id, name)
    elif out is not None:
        target = Target(open_store(out, config.store.s3, config.store.local_cache), "")
    else:
        raise GlaveError("evaluating records outside a run needs --out (a folder or s3:// prefix for the results)")
    items, missing = split_questions(qs, source)
    if not items:
        raise GlaveError(f"no question of {qs.source} has a video in {source.description} "
                         f"({len(missing)} questions for videos not found)")
    n_repeats = repeats or ev.repeats
    own_engine = engine is None
    engine = engine or build_engine(ev.judge, cache_dir=config.store.local_cache, s3=config.store.s3)
    try:
        votes = ask(engine, items, repeats=n_repeats, structured_retries=ev.judge.structured_retries,
                    batch_size=ev.batch_size)
        judge = judge_info(ev.judge, engine, n_repeats)
    finally:
        if own_engine:
            engine.close()
    answers = answers_from_votes(votes)
    rows = score_rows(answers)
    label = judge["label"]
    skipped = qs.skipped + missing
    target.store.write_table(target.key("votes.parquet"), schemas.rows_to_table(_vote_rows(votes), schemas.EVAL_VOTES))
    target.store.write_table(target.key("answers.parquet"),
                             schemas.rows_to_table(_answer_rows(answers, label), schemas.EVAL_ANSWERS))
    target.store.write_table(target.key("scores.parquet"),
                             schemas.rows_to_table([{**r, "judge": label} for r in rows], schemas.EVAL_SCORES))
    target.store.write_table(target.key("skipped.parquet"), schemas.rows_to_table(_skipped_rows(skipped), schemas.EVAL_SKIPPED))
    reasons: dict[str, int] = {}
    for s in skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    summary: dict[str, Any] = {
        "run_id": run_id, "name": name, "created_at": datetime.now(UTC).isoformat(),
        "code_version": __version__, "captions": source.description, "judge": judge,
        "question_set": {"name": qs.name, "source": qs.source, "questions": len(qs.questions) + len(qs.skipped),
                         "videos": len(qs.video_ids)},
        "scores": headline(rows), "requests": len(votes),
        "skipped": {"total": len(skipped), "by_reason": reasons,
                    "videos_not_in_run": sorted({s.video_id for s in missing if s.reason == "video_not_in_run"})},
        "tables": {t: target.store.uri(target.key(f"{t}.parquet")) for t in ("votes", "answers", "scores", "skipped")},
        # Every file of a records folder that was not scored, with the reason (none for a run).
        "files_not_taken": source.not_taken,
    }
    baseline = None
    if run_id is not None or baseline_run_id:
        baseline = find_baseline(store, run_id, name, baseline_run_id or ev.baseline_run_id)
    summary["comparison"] = compare(summary, baseline, ev.regression_margin) if baseline is not None else None
    target.store.write_json(target.key("summary.json"), summary)
    from ..report.evaluation import evaluation_page

    target.store.write_bytes(target.key("index.html"), evaluation_page(summary).encode())
    summary["html"] = target.store.uri(target.key("index.html"))
    log.info("evaluation %s: accuracy %s over %d questions (%s)", name, summary["scores"]["accuracy"],
             summary["scores"]["questions"], label)
    return summary


def read_summary(store: ArtifactStore, run_id: str, name: str) -> dict[str, Any]:
    key = run_target(store, run_id, name).key("summary.json")
    if not store.exists(key):
        raise GlaveError(f"run {run_id!r} has no {name!r} evaluation (run `glave evaluate --run-id {run_id}` first)")
    summary: dict[str, Any] = store.read_json(key)
    return summary


def evaluations_of(store: ArtifactStore, run_id: str) -> list[dict[str, Any]]:
    """Every evaluation summary stored with a run (one per question set)."""
    base = join_key(RunLayout(run_id).prefix, EVALUATION_DIR)
    out = []
    for name in store.list_dirs(base):
        key = join_key(base, name, "summary.json")
        if store.exists(key):
            out.append(store.read_json(key))
    return out


def check_regression(store: ArtifactStore, config: GlaveConfig, run_id: str, name: str,
                     baseline_run_id: str | None = None) -> dict[str, Any]:
    """Compare a run's stored evaluation with its baseline; raise :class:`RegressionDetected` on a drop."""
    current = read_summary(store, run_id, name)
    baseline = find_baseline(store, run_id, name, baseline_run_id or config.evaluate.baseline_run_id)
    if baseline is None:
        return {"status": "no_baseline", "current_run_id": run_id, "regressed": False,
                "accuracy": current["scores"]["accuracy"]}
    result = compare(current, baseline, config.evaluate.regression_margin)
    if result["regressed"]:
        raise RegressionDetected(
            f"{name} accuracy of run {run_id!r} fell from {result['baseline_accuracy']:.4f} (run "
            f"{result['baseline_run_id']!r}) to {result['accuracy']:.4f}: a drop of {-result['delta']:.4f} "
            f"> margin {result['margin']}")
    return result
