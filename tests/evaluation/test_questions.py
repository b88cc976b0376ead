"""Question sets: benchmark annotation files in the published shape (local folder, single file and
an s3:// prefix), the records' own QA, scene hints of neighbours, and unusable entries reported."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from glave_tasks.config import S3Options
from glave_tasks.errors import GlaveError
from glave_tasks.evaluation.questions import from_records, load_benchmark
from glave_tasks.quality.record_format import Record

from . import stories

# One file in the published shape, written by hand: a YouTube-style name with a leading dash,
# scenes as strings and as integers, a whole-video question, and four entries that cannot be asked.
ANNOTATION = {
    "scene_hint": {"0": "A chef slices vegetables in a small kitchen.", "1": "The chef plates the dish.",
                   "2": "A guest tastes the food."},
    "qa": {
        "-Ab3_0": {"id": "-Ab3_0", "scene": "0", "dimension": "Description-Object", "question": "What is sliced?",
                   "options": ["A. Carrots", "B. Bread", "C. Fish", "D. Apples"], "answer": "A"},
        "-Ab3_1": {"id": "-Ab3_1", "scene": 1, "dimension": "Spatial", "question": "Where is the plate?",
                   "options": ["A. On the floor", "B. On the counter", "C. In the sink", "D. On a chair"], "answer": "B"},
        "-Ab3_2": {"id": "-Ab3_2", "scene": "-1", "dimension": "Time Order", "question": "What happens last?",
                   "options": ["A. Slicing", "B. Plating", "C. Tasting", "D. Washing"], "answer": "C"},
        "-Ab3_3": {"id": "-Ab3_3", "scene": 2, "dimension": "Count", "question": "How many guests?",
                   "options": ["A. One", "B. Two", "C. Three"], "answer": "A"},
        "-Ab3_4": {"id": "-Ab3_4", "scene": "2", "dimension": "Count", "question": "How many forks?",
                   "options": ["A. One", "B. Two", "C. Three", "D. Four"], "answer": "F"},
        "-Ab3_5": {"id": "-Ab3_5", "scene": "7", "dimension": "Speed", "question": "How fast?",
                   "options": ["A. Slow", "B. Fast", "C. Still", "D. Varies"], "answer": "A"},
        "-Ab3_6": {"id": "-Ab3_6", "scene": "0", "dimension": "Binary", "question": "Is it raining?",
                   "options": ["A. Yes", "C. No", "B. Maybe", "D. Unknown"], "answer": "A"},
    },
}


def test_published_annotation_file_loads_with_scenes_hints_and_reasons(tmp_path: Path) -> None:
    (tmp_path / "-Ab3.json").write_text(json.dumps(ANNOTATION, indent=4))
    qs = load_benchmark(str(tmp_path / "-Ab3.json"))
    assert qs.name == "benchmark"
    assert [(q.question_id, q.scene, q.answer) for q in qs.questions] == [
        ("-Ab3_0", 0, "A"), ("-Ab3_1", 1, "B"), ("-Ab3_2", -1, "C")]
    assert all(q.video_id == "-Ab3" for q in qs.questions)
    assert qs.questions[0].options == ("A. Carrots", "B. Bread", "C. Fish", "D. Apples")
    reasons = {s.question_id: s.detail for s in qs.skipped}
    assert set(reasons) == {"-Ab3_3", "-Ab3_4", "-Ab3_5", "-Ab3_6"}
    assert all(s.reason == "invalid_question" for s in qs.skipped)
    assert "4 options" in reasons["-Ab3_3"] and "'F'" in reasons["-Ab3_4"]
    assert "scene 7 has no scene_hint" in reasons["-Ab3_5"] and "labelled 'C'" in reasons["-Ab3_6"]
    # The judge locates a scene by its hint and its neighbours' hints.
    first, middle, whole = qs.questions
    assert qs.scene_context(first) == {"scene_hint": ANNOTATION["scene_hint"]["0"],
                                       "previous_hint": "(no scene before this one)",
                                       "next_hint": ANNOTATION["scene_hint"]["1"]}
    assert qs.scene_context(middle)["previous_hint"] == ANNOTATION["scene_hint"]["0"]
    assert qs.scene_context(middle)["next_hint"] == ANNOTATION["scene_hint"]["2"]
    assert qs.scene_context(whole) == {}


def test_benchmark_folder_local_and_on_s3(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    folder = stories.write_benchmark(tmp_path / "bench")
    local = load_benchmark(str(folder))
    assert len(local.questions) == sum(len(s.questions) for s in stories.STORIES) and not local.skipped
    assert sorted(local.hints) == sorted(s.video_id for s in stories.STORIES)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for f in folder.glob("*.json"):
        s3.upload_file(str(f), s3_bucket, f"glave-bench/annotation_eng/{f.name}")
    s3.put_object(Bucket=s3_bucket, Key="glave-bench/annotation_eng/-Ab3.json", Body=json.dumps(ANNOTATION).encode())
    remote = load_benchmark(f"s3://{s3_bucket}/glave-bench/annotation_eng", S3Options(endpoint_url=s3_endpoint))
    assert len(remote.questions) == len(local.questions) + 3 and len(remote.skipped) == 4
    assert {q.question_id for q in local.questions} < {q.question_id for q in remote.questions}


def test_bad_question_sets_fail_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GlaveError, match="no such file"):
        load_benchmark(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GlaveError, match="no \\*.json annotation files"):
        load_benchmark(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "v.json").write_text("{not json")
    with pytest.raises(GlaveError, match="v.json is not valid JSON"):
        load_benchmark(str(tmp_path / "bad"))
    (tmp_path / "bad" / "v.json").write_text(json.dumps({"scene_list": {}}))
    with pytest.raises(GlaveError, match="not a benchmark annotation file"):
        load_benchmark(str(tmp_path / "bad"))


def test_records_own_qa_become_questions_with_scene_hints() -> None:
    story = stories.STORIES[0]
    data = stories.record(story)
    data["scene_list"]["1"]["QA_pair"]["9"] = {"Question": "Broken?", "Answer": "x", "Dimension": "Count",
                                               "Options": ["A. x", "B. y"], "Answer_choices": "A"}
    qs = from_records([Record(story.video_id, data)])
    assert qs.name == "self-qa" and len(qs.questions) == len(story.questions)
    assert [s.question_id for s in qs.skipped] == [f"{story.video_id}/scene1/9"]
    general = [q for q in qs.questions if q.scene == -1]
    assert len(general) == sum(q.scene == -1 for q in story.questions)
    assert all(q.question_id.startswith(f"{story.video_id}/general/") for q in general)
    scene1 = next(q for q in qs.questions if q.scene == 1)
    assert qs.scene_context(scene1) == {"scene_hint": story.hints[1], "previous_hint": story.hints[0],
                                        "next_hint": "(no scene after this one)"}
    # The letter each question names is the one the record marks correct.
    for q in qs.questions:
        assert q.options["ABCD".index(q.answer)].endswith(
            next(s.correct for s in story.questions if s.question == q.question))
