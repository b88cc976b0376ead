"""Scores on hand-made votes: majority, ties, E answers, unparsable questions, groups, comparison."""

from __future__ import annotations

import pytest

from glave_tasks.evaluation.judge import JudgeItem, Vote
from glave_tasks.evaluation.questions import Question
from glave_tasks.evaluation.scoring import answers_from_votes, compare, headline, majority, score_rows


def q(vid: str, qid: str, dim: str, answer: str) -> Question:
    return Question(vid, qid, 0, dim, f"question {qid}?", ("A. a", "B. b", "C. c", "D. d"), answer)


def votes(question: Question, letters: list[str | None]) -> list[Vote]:
    item = JudgeItem(question, "caption")
    # Repeats arrive out of order on purpose: answers are grouped and ordered by repeat.
    return [Vote(item, r, letter) for r, letter in reversed(list(enumerate(letters)))]


@pytest.mark.parametrize(("letters", "expected"), [
    (["A", "A", "A"], ("A", False)),
    (["A", "B", "A"], ("A", False)),
    (["E", "E", "B"], ("E", False)),
    (["A", "B", "C"], ("E", True)),  # three-way tie: the judge could not settle it
    (["A", "B", None], ("E", True)),  # one vote unparsable, the other two disagree
    (["C", None, None], ("C", False)),  # one valid vote decides
    ([None, None, None], (None, False)),  # nothing valid: unparsable
    (["A", "A", "E", "E"], ("E", True)),
])
def test_majority_vote_rules(letters: list[str | None], expected: tuple[str | None, bool]) -> None:
    assert majority(letters) == expected


def test_scores_overall_per_dimension_and_per_video_on_hand_made_votes() -> None:
    qs = {
        "v1/1": q("v1", "1", "Count", "A"),  # A,A,B -> A correct
        "v1/2": q("v1", "2", "Count", "B"),  # A,B,C -> tie -> E, wrong
        "v1/3": q("v1", "3", "Spatial", "C"),  # E,E,E -> E, wrong
        "v2/1": q("v2", "1", "Spatial", "D"),  # all unparsable
        "v2/2": q("v2", "2", "Count", "D"),  # D,None,D -> D correct
    }
    script = {"v1/1": ["A", "A", "B"], "v1/2": ["A", "B", "C"], "v1/3": ["E", "E", "E"],
              "v2/1": [None, None, None], "v2/2": ["D", None, "D"]}
    answers = answers_from_votes([v for k, letters in script.items() for v in votes(qs[k], letters)])
    by_id = {f"{a.question.video_id}/{a.question.question_id}": a for a in answers}
    assert by_id["v1/1"].final == "A" and by_id["v1/1"].correct
    assert by_id["v1/2"].final == "E" and by_id["v1/2"].tie and not by_id["v1/2"].correct
    assert by_id["v2/1"].final is None and by_id["v2/1"].status == "unparsable"
    assert by_id["v2/2"].votes == ("D", None, "D")

    rows = {(r["scope"], r["key"]): r for r in score_rows(answers)}
    overall = rows[("overall", "all")]
    assert overall["questions"] == 5 and overall["correct"] == 2
    assert overall["accuracy"] == pytest.approx(2 / 5)
    assert overall["e_rate"] == pytest.approx(2 / 5)  # the tie and the all-E question
    assert overall["unparsable"] == 1 and overall["ties"] == 1
    # Valid votes: A,A,B | A,B,C | E,E,E | - | D,D -> correct A,A,B(no) | B | - | - | D,D = 5 of 11.
    assert overall["vote_accuracy"] == pytest.approx(5 / 11)
    count = rows[("dimension", "Count")]
    assert (count["questions"], count["correct"], count["ties"]) == (3, 2, 1)
    assert count["accuracy"] == pytest.approx(2 / 3) and count["e_rate"] == pytest.approx(1 / 3)
    spatial = rows[("dimension", "Spatial")]
    assert (spatial["questions"], spatial["correct"], spatial["unparsable"]) == (2, 0, 1)
    assert spatial["vote_accuracy"] == 0.0
    assert rows[("video", "v1")]["accuracy"] == pytest.approx(1 / 3)
    assert rows[("video", "v2")]["accuracy"] == pytest.approx(1 / 2)
    h = headline(score_rows(answers))
    assert h["per_dimension"]["Count"]["questions"] == 3 and h["per_video"]["v2"]["e_rate"] == 0.0


def _summary(run: str, acc: float, dims: dict[str, float], backend: str = "openai", model: str = "judge-1") -> dict:
    return {"run_id": run, "judge": {"backend": backend, "model_id": model}, "question_set": {"name": "benchmark"},
            "scores": {"accuracy": acc, "e_rate": 0.1, "per_dimension": {d: {"accuracy": a} for d, a in dims.items()}}}


def test_comparison_flags_a_drop_beyond_the_margin_only() -> None:
    base = _summary("r1", 0.70, {"Count": 0.8, "Spatial": 0.6})
    slight = compare(_summary("r2", 0.69, {"Count": 0.7, "Spatial": 0.68}), base, margin=0.02)
    assert slight["status"] == "ok" and not slight["regressed"] and slight["delta"] == pytest.approx(-0.01)
    assert slight["per_dimension"]["Count"]["delta"] == pytest.approx(-0.1)
    drop = compare(_summary("r2", 0.60, {"Count": 0.5}), base, margin=0.02)
    assert drop["regressed"] and drop["status"] == "regressed"
    assert drop["per_dimension"]["Spatial"] == {"current": None, "baseline": 0.6, "delta": None}
    better = compare(_summary("r2", 0.9, {}), base, margin=0.0)
    assert not better["regressed"]
    # An embedded judge's numbers are not compared with an LLM judge's: reported, never failed.
    other = compare(_summary("r2", 0.1, {}, backend="embedded", model="embedded:minilm"), base, margin=0.02)
    assert other["status"] == "not_comparable" and not other["regressed"]
