"""The judge through the OpenAI-compatible engine against a scripted server on 127.0.0.1.

The server is not a model: per question it replies from a script (right letter, wrong letter, E,
malformed JSON, a lowercase letter, a code fence, an HTTP error), so the expected votes and
scores are known exactly: repeats, majority vote with a tie, retries of unparsable answers then
their recording, transport failures recorded, questions of a video that is not in the captions
counted apart, and the prompts carrying E and the scene hints.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.evaluation.pipeline import evaluate
from glave_tasks.store import ArtifactStore
from tests.support import make_config
from tests.support.openai_server import FakeServer, completion

from . import stories

STORY = stories.STORIES[0]  # the noodle stall: 8 questions over 2 scenes and the whole video


def _letters(k: int) -> tuple[str, str]:
    _, correct = stories._options(STORY.questions[k], k)
    return correct, "ABCD"[("ABCD".index(correct) + 1) % 4]


def _reply(letter: str) -> str:
    return json.dumps({"reason": "scripted", "answer": letter})


def _scripts() -> dict[str, list[Any]]:
    """Question text -> replies in arrival order (str: content, int: HTTP status)."""
    out: dict[str, list[Any]] = {}
    bad = "I think the answer is probably B"
    for k, q in enumerate(STORY.questions):
        c, w = _letters(k)
        out[q.question] = [
            [_reply(c)] * 3,  # 0: unanimous, right
            [_reply(c), _reply(w), _reply("E")],  # 1: three-way tie -> E
            [_reply("E")] * 3,  # 2: not enough information
            [bad, _reply(c), _reply(c), _reply(c)],  # 3: one unparsable, retried, then right
            [bad] * 9,  # 4: unparsable on every attempt (3 repeats x 3 attempts)
            [_reply(w), _reply(w), _reply(c)],  # 5: majority wrong
            [json.dumps({"reason": "x", "answer": c.lower()}), f"```json\n{_reply(c)}\n```", _reply(c), _reply(c)],  # 6
            [500, _reply(c), _reply(c)],  # 7: one transport failure, recorded, not retried
        ][k]
    return out


def scripted_judge(serve: Callable[..., FakeServer]) -> tuple[FakeServer, dict[str, int]]:
    scripts, used, lock = _scripts(), {}, threading.Lock()

    def respond(body: dict[str, Any], n: int) -> tuple[int, Any]:
        text = body["messages"][0]["content"][-1]["text"]
        question = re.search(r"^Question: (.*)$", text, re.M).group(1)  # type: ignore[union-attr]
        with lock:
            i = used.get(question, 0)
            used[question] = i + 1
        reply = scripts[question][i]
        if isinstance(reply, int):
            return reply, {"error": {"message": "scripted failure", "type": "server_error"}}
        return 200, completion(reply, model="scripted-judge")

    return serve(respond), used


@pytest.fixture
def scored(tmp_path: Path, serve: Callable[..., FakeServer]) -> dict[str, Any]:
    server, used = scripted_judge(serve)
    config = make_config(tmp_path, evaluate={"judge": {
        "backend": "openai", "base_url": server.url, "model": "scripted-judge", "concurrency": 4, "retries": 0,
        "structured_retries": 2}})
    records = stories.write_records(tmp_path / "records", (STORY,))
    bench = stories.write_benchmark(tmp_path / "bench", (STORY, stories.STORIES[1]))  # the 2nd video has no caption
    store = ArtifactStore(config.store.root)
    summary = evaluate(store, config, records=str(records), questions=str(bench), out=str(tmp_path / "out"))
    out = ArtifactStore(str(tmp_path / "out"))
    return {"summary": summary, "server": server, "used": used, "out": out,
            "tables": {t: out.read_table(f"{t}.parquet").to_pylist() for t in ("votes", "answers", "scores", "skipped")}}


def test_scores_from_scripted_votes(scored: dict[str, Any]) -> None:
    s = scored["summary"]["scores"]
    # Right: 0, 3 (after a retry), 6 (after a retry; fence tolerated), 7 (two valid votes) -> 4 of 8.
    assert (s["questions"], s["correct"], s["accuracy"]) == (8, 4, 0.5)
    assert s["e_rate"] == 2 / 8  # the tie and the E answer
    assert (s["unparsable"], s["ties"]) == (1, 1)
    answers = {a["question_id"]: a for a in scored["tables"]["answers"]}
    ids = [f"{STORY.video_id}_{k}" for k in range(8)]
    assert [answers[i]["status"] for i in ids] == ["answered"] * 4 + ["unparsable"] + ["answered"] * 3
    assert answers[ids[1]]["final"] == "E" and answers[ids[1]]["tie"]
    assert answers[ids[4]]["final"] is None and answers[ids[4]]["votes"] == ["", "", ""]
    assert sorted(answers[ids[7]]["votes"]) == ["", _letters(7)[0], _letters(7)[0]]
    assert all(a["judge"] == "openai LLM judge scripted-judge" for a in answers.values())


def test_unparsable_answers_are_retried_then_recorded_with_their_text(scored: dict[str, Any]) -> None:
    used = scored["used"]
    qs = STORY.questions
    assert used[qs[0].question] == 3 and used[qs[3].question] == 4 and used[qs[6].question] == 4
    assert used[qs[4].question] == 9, "three attempts per repeat"
    assert used[qs[7].question] == 3, "transport failures are not re-asked as malformed answers"
    assert len(scored["server"].bodies) == 3 * 8 + 1 + 6 + 1
    votes = [v for v in scored["tables"]["votes"] if v["question_id"] == f"{STORY.video_id}_4"]
    assert len(votes) == 3 and all(v["letter"] is None and v["error"] == "malformed_model_output" for v in votes)
    assert all(v["attempts"] == 3 and "probably B" in v["text"] for v in votes)
    failed = [v for v in scored["tables"]["votes"] if v["error"] == "model_http_error"]
    assert len(failed) == 1 and failed[0]["question_id"] == f"{STORY.video_id}_7" and "500" in failed[0]["error_detail"]
    ok = [v for v in scored["tables"]["votes"] if v["letter"]]
    assert {v["generator"] for v in ok} == {"openai"} and {v["model_id"] for v in ok} == {"scripted-judge"}
    assert {v["prompt_version"] for v in ok} == {"judge_scene@1", "judge_video@1"}


def test_prompts_carry_option_e_scene_hints_and_the_letter_schema(scored: dict[str, Any]) -> None:
    bodies = scored["server"].bodies
    for body in bodies:
        schema = body["response_format"]["json_schema"]["schema"]
        assert schema["properties"]["answer"]["enum"] == ["A", "B", "C", "D", "E"]
        assert schema["additionalProperties"] is False and set(schema["required"]) == {"reason", "answer"}
        assert "E. Not enough information" in body["messages"][0]["content"][-1]["text"]
        assert body["temperature"] == 0.7, "repeats sample: JSON answers are not decoded greedily for the judge"
    by_question = {re.search(r"^Question: (.*)$", b["messages"][0]["content"][-1]["text"], re.M).group(1):  # type: ignore[union-attr]
                   b["messages"][0]["content"][-1]["text"] for b in bodies}
    scene0 = by_question[STORY.questions[0].question]
    assert STORY.caption in scene0
    assert f"- the scene asked about: {STORY.hints[0]}" in scene0 and "(no scene before this one)" in scene0
    assert f"- scene after: {STORY.hints[1]}" in scene0
    scene1 = by_question[STORY.questions[4].question]
    assert f"- scene before: {STORY.hints[0]}" in scene1 and "(no scene after this one)" in scene1
    whole = by_question[STORY.questions[7].question]
    assert "scene asked about" not in whole and STORY.caption in whole


def test_questions_of_videos_not_in_the_captions_are_counted_not_dropped(scored: dict[str, Any]) -> None:
    skipped = scored["tables"]["skipped"]
    other = stories.STORIES[1]
    assert len(skipped) == len(other.questions)
    assert {s["reason"] for s in skipped} == {"video_not_in_run"} and {s["video_id"] for s in skipped} == {other.video_id}
    summary = scored["summary"]
    assert summary["skipped"] == {"total": 8, "by_reason": {"video_not_in_run": 8}, "videos_not_in_run": [other.video_id]}
    assert summary["question_set"]["questions"] == 16
    html = scored["out"].read_bytes("index.html").decode()
    assert "8 video_not_in_run" in html and other.video_id in html
    scores = {(r["scope"], r["key"]) for r in scored["tables"]["scores"]}
    assert ("video", other.video_id) not in scores and ("video", STORY.video_id) in scores


def test_an_exported_dataset_on_s3_matches_benchmark_files_by_input_file_name(
        tmp_path: Path, serve: Callable[..., FakeServer], s3_endpoint: str, s3_bucket: str) -> None:
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    server = serve(lambda body, n: (200, completion(_reply("A"))))
    config = make_config(tmp_path, store={"s3": {"endpoint_url": s3_endpoint}}, evaluate={"repeats": 1, "judge": {
        "backend": "openai", "base_url": server.url, "model": "always-a", "retries": 0}})
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    # An export names records by content hash; its videos table keeps the input file name.
    s3.put_object(Bucket=s3_bucket, Key="published/r1/json/9f2c41.json", Body=json.dumps(stories.record(STORY)).encode())
    s3.put_object(Bucket=s3_bucket, Key="published/r1/dataset_card.json", Body=b'{"run_id": "r1"}')
    videos = tmp_path / "videos.parquet"
    pq.write_table(pa.table({"video_id": ["9f2c41"], "file_name": [f"{STORY.video_id}.mp4"]}), videos)
    s3.upload_file(str(videos), s3_bucket, "published/r1/parquet/videos.parquet")
    bench = stories.write_benchmark(tmp_path / "bench", (STORY,))
    summary = evaluate(ArtifactStore(config.store.root), config, records=f"s3://{s3_bucket}/published/r1",
                       questions=str(bench), out=str(tmp_path / "out"))
    assert summary["scores"]["questions"] == 8 and summary["skipped"]["total"] == 0
    assert summary["captions"] == f"records s3://{s3_bucket}/published/r1" and len(server.bodies) == 8
    correct = sum(_letters(k)[0] == "A" for k in range(8))
    assert summary["scores"]["correct"] == correct
