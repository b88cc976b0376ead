"""The judge on the real vLLM engine with a tiny random model built offline (in ``.venv-llm``):
batching of question x repeat requests, JSON-schema constrained answers parsed strictly, retries
of unparsable answers as batches then their recording, and scores that follow from the votes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.evaluation.scoring import majority
from glave_tasks.store import ArtifactStore
from tests.support.llm_env import build_tiny_model, run_llm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("vllm-judge")
    model = build_tiny_model(tmp / "model")
    out = tmp / "results.json"
    run_llm("-m", "tests.evaluation.vllm_judge_scenario", str(model), str(tmp), str(out), timeout=1200)
    data: dict[str, Any] = json.loads(out.read_text())
    data["work"] = tmp
    return data


def test_requests_go_in_batches_and_answers_parse_strictly(scenario: dict[str, Any]) -> None:
    b = scenario["batched"]
    # 48 requests (16 questions x 3 repeats) in batches of 32; each batch's retries follow it.
    assert b["batches"][0] == 32 and 16 in b["batches"]
    votes = b["votes"]
    assert len(votes) == 48 and Counter(v["repeat"] for v in votes) == {0: 16, 1: 16, 2: 16}
    parsed = [v for v in votes if v["letter"] is not None]
    assert parsed, "the constrained decoder yields parsable answers"
    for v in parsed:
        assert v["letter"] in "ABCDE" and v["error"] is None
        assert json.loads(v["text"], strict=False)["answer"] == v["letter"]
        assert v["generator"] == "vllm" and v["model_id"] == "tiny-qwen2-vl" and v["model_revision"] == "test-rev"
        assert v["prompt_version"] in ("judge_scene@1", "judge_video@1") and v["completion_tokens"] > 0
    for v in votes:
        if v["letter"] is None:
            assert v["error"] in ("malformed_model_output", "model_output_truncated", "empty_model_output")
            assert v["attempts"] >= 2
    # Retries go back to the engine as batches, only for the answers that could not be used.
    retried = sum(v["attempts"] - 1 for v in votes)
    assert sum(b["batches"]) == 48 + retried


def test_a_judge_out_of_tokens_is_retried_as_a_batch_then_recorded(scenario: dict[str, Any]) -> None:
    t = scenario["truncated"]
    # Cut off at 3 tokens: re-sent together once with a larger budget (still capped), then recorded.
    assert t["batches"] == [8, 8], "4 questions x 2 repeats, re-sent together"
    assert all(v["letter"] is None and v["error"] == "model_output_truncated" and v["attempts"] == 2
               for v in t["votes"])
    assert all(v["completion_tokens"] > 3 for v in t["votes"]), "tokens of every attempt are counted"


def test_scores_follow_from_the_recorded_votes(scenario: dict[str, Any]) -> None:
    e = scenario["evaluate"]
    summary = e["summary"]
    assert e["batches"][0] == 32 and summary["requests"] == 48
    assert summary["judge"]["backend"] == "vllm" and not summary["judge"]["embedded"]
    out = ArtifactStore(str(Path(scenario["work"]) / "out"))
    votes = out.read_table("votes.parquet").to_pylist()
    answers = {a["question_id"]: a for a in out.read_table("answers.parquet").to_pylist()}
    by_q: dict[str, list[str | None]] = {}
    for v in sorted(votes, key=lambda v: v["repeat"]):
        by_q.setdefault(v["question_id"], []).append(v["letter"])
    correct = 0
    for qid, letters in by_q.items():
        final, tie = majority(letters)
        assert answers[qid]["final"] == final and answers[qid]["tie"] == tie
        correct += final == answers[qid]["answer"]
    assert summary["scores"]["correct"] == correct and summary["scores"]["questions"] == 16
    assert summary["scores"]["accuracy"] == correct / 16
