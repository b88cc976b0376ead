"""From votes to scores: majority vote per question, accuracy overall / per dimension / per video,
E-rate, and the comparison of two evaluations.

Rules (each has a test):
- A question's answer is the letter most of its valid votes chose. A tie between letters is
  scored as E: the judge could not settle the question from the caption. The tie is recorded.
- A question with no valid vote at all (every repeat unparsable after retries) is ``unparsable``:
  it stays in the denominator, counted wrong, and is reported on its own.
- Accuracy = correct / questions judged; E-rate = questions answered E / questions judged;
  vote accuracy = correct votes / valid votes (how stable the judge is across repeats).
- Questions never judged (invalid entries, videos not in the run) are reported, not scored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .judge import Vote
from .questions import Question

ANSWERED, UNPARSABLE = "answered", "unparsable"


@dataclass(frozen=True)
class Answer:
    question: Question
    votes: tuple[str | None, ...]  # one per repeat; None: unparsable after retries
    final: str | None  # majority letter A-E; None when no vote was valid
    tie: bool

    @property
    def status(self) -> str:
        return UNPARSABLE if self.final is None else ANSWERED

    @property
    def correct(self) -> bool:
        return self.final == self.question.answer

    @property
    def valid_votes(self) -> list[str]:
        return [v for v in self.votes if v is not None]


def majority(votes: Sequence[str | None]) -> tuple[str | None, bool]:
    """(letter, tie): the most frequent valid letter; a tie for first place is E."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None, False
    top = max(counts.values())
    leaders = [letter for letter, n in counts.items() if n == top]
    if len(leaders) > 1:
        return "E", True
    return leaders[0], False


def answers_from_votes(votes: Iterable[Vote]) -> list[Answer]:
    """One answer per question, in first-seen order (votes of one question may come in any order)."""
    grouped: dict[tuple[str, str], list[Vote]] = {}
    for v in votes:
        grouped.setdefault((v.item.question.video_id, v.item.question.question_id), []).append(v)
    out = []
    for group in grouped.values():
        letters = tuple(v.letter for v in sorted(group, key=lambda v: v.repeat))
        final, tie = majority(letters)
        out.append(Answer(group[0].item.question, letters, final, tie))
    return out


def _group_scores(answers: Sequence[Answer]) -> dict[str, Any]:
    n = len(answers)
    valid = [(v, a.question.answer) for a in answers for v in a.valid_votes]
    return {
        "questions": n,
        "correct": sum(a.correct for a in answers),
        "accuracy": _ratio(sum(a.correct for a in answers), n),
        "e_rate": _ratio(sum(a.final == "E" for a in answers), n),
        "unparsable": sum(a.status == UNPARSABLE for a in answers),
        "ties": sum(a.tie for a in answers),
        "vote_accuracy": _ratio(sum(v == truth for v, truth in valid), len(valid)),
    }


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def score_rows(answers: Sequence[Answer]) -> list[dict[str, Any]]:
    """Rows of the scores table: scope ``overall`` (key ``all``), ``dimension`` and ``video``."""
    rows = [{"scope": "overall", "key": "all", **_group_scores(answers)}]
    for scope in ("dimension", "video"):
        groups: dict[str, list[Answer]] = defaultdict(list)
        for a in answers:
            groups[a.question.dimension if scope == "dimension" else a.question.video_id].append(a)
        rows += [{"scope": scope, "key": k, **_group_scores(groups[k])} for k in sorted(groups)]
    return rows


def headline(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Overall numbers plus accuracy per dimension and per video, as the summary carries them."""
    overall = next(r for r in rows if r["scope"] == "overall")
    return {
        **{k: overall[k] for k in ("questions", "correct", "accuracy", "e_rate", "unparsable", "ties", "vote_accuracy")},
        "per_dimension": {r["key"]: {"questions": r["questions"], "accuracy": r["accuracy"], "e_rate": r["e_rate"]}
                          for r in rows if r["scope"] == "dimension"},
        "per_video": {r["key"]: {"questions": r["questions"], "accuracy": r["accuracy"], "e_rate": r["e_rate"]}
                      for r in rows if r["scope"] == "video"},
    }


def compare(current: dict[str, Any], baseline: dict[str, Any], margin: float) -> dict[str, Any]:
    """Current vs baseline evaluation summaries. ``regressed`` when overall accuracy dropped by more
    than ``margin``; judges of different kinds are not comparable (reported, never failed)."""
    cur, base = current["scores"], baseline["scores"]
    same_judge = (current["judge"]["backend"], current["judge"]["model_id"]) == (
        baseline["judge"]["backend"], baseline["judge"]["model_id"])
    comparable = same_judge and current["question_set"]["name"] == baseline["question_set"]["name"]
    delta = None if cur["accuracy"] is None or base["accuracy"] is None else round(cur["accuracy"] - base["accuracy"], 6)
    dims = sorted(set(cur["per_dimension"]) | set(base["per_dimension"]))
    per_dim = {}
    for d in dims:
        a = (cur["per_dimension"].get(d) or {}).get("accuracy")
        b = (base["per_dimension"].get(d) or {}).get("accuracy")
        per_dim[d] = {"current": a, "baseline": b, "delta": None if a is None or b is None else round(a - b, 6)}
    regressed = bool(comparable and delta is not None and -delta > margin + 1e-12)
    return {
        "baseline_run_id": baseline.get("run_id"), "current_run_id": current.get("run_id"),
        "comparable": comparable, "margin": margin, "accuracy": cur["accuracy"], "baseline_accuracy": base["accuracy"],
        "delta": delta,
        "e_rate_delta": None if cur["e_rate"] is None or base["e_rate"] is None else round(cur["e_rate"] - base["e_rate"], 6),
        "per_dimension": per_dim, "regressed": regressed,
        "status": "regressed" if regressed else ("ok" if comparable else "not_comparable"),
    }
