"""QA stage on the rules engine: QA written from track and ingest facts must be correct."""

from __future__ import annotations

from pathlib import Path

import pytest

from glave_tasks import schemas
from glave_tasks.layout import RunLayout
from glave_tasks.stage import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore

from .seed_run import seed_captioned_run

RUN = "r-qa"


@pytest.fixture
def qa_rows(tmp_path: Path, config) -> list[dict]:
    store = ArtifactStore(config.store.root)
    seed_captioned_run(store, config, RUN, tmp_path)
    out = run_stage(build_stage("qa", config), store, RUN, 0, show_progress=False)
    assert out.status == "committed", out.marker
    return store.read_table(RunLayout(RUN).table("qa", 0, "qa"), schemas.QA).to_pylist()


def _answer_text(row: dict) -> str:
    return row["options"][schemas.ANSWER_LETTERS.index(row["answer_choice"])][3:]


def test_rules_qa_answers_counts_and_directions_from_the_ground_truth(qa_rows: list[dict]) -> None:
    by_q = {(r["video_id"], r["scene_index"], r["question"]): r for r in qa_rows}
    # Scene 0: one box moving right, one disc moving down; scene 1 after the cut: one box moving left.
    expected = {
        ("twoshot", 1, "In which direction does the box move in this scene?"): "to the left",
        ("twoshot", 1, "How many boxes can be seen in this scene?"): "one",
        ("twoshot", None, "How many hard shot cuts does the video contain?"): "one",
        ("twoshot", None, "In which scene does a disc appear for the first time?"): "the first scene",
    }
    for key, answer in expected.items():
        assert key in by_q, f"missing {key}; have {list(by_q)}"
        assert by_q[key]["answer"] == answer and _answer_text(by_q[key]) == answer
    scene0 = {r["dimension"]: r for r in qa_rows if r["video_id"] == "twoshot" and r["scene_index"] == 0}
    assert scene0["Object Direction"]["answer"] in ("to the right", "downward")
    assert scene0["Object Direction"]["question"].endswith(
        {"to the right": "the box move in this scene?", "downward": "the disc move in this scene?"}[scene0["Object Direction"]["answer"]])


def test_qa_rows_follow_the_glave_contract(qa_rows: list[dict]) -> None:
    assert qa_rows
    per_scene: dict[tuple, list[str]] = {}
    for r in qa_rows:
        assert r["generator"] == "rules" and "qa_options@1" in r["prompt_version"]
        assert len(r["options"]) == 4 and [o[:3] for o in r["options"]] == ["A. ", "B. ", "C. ", "D. "]
        assert r["answer_choice"] in schemas.ANSWER_LETTERS and _answer_text(r) == r["answer"]
        if r["scene_index"] is None:
            assert r["dimension"] in schemas.VIDEO_DIMENSIONS
        else:
            assert r["dimension"] in schemas.SCENE_DIMENSIONS
            per_scene.setdefault((r["video_id"], r["scene_index"]), []).append(r["dimension"])
    assert all(len(d) == len(set(d)) for d in per_scene.values()), "at most one QA per scene dimension"
    assert len({r["qa_id"] for r in qa_rows}) == len(qa_rows)
    general = [(r["video_id"], r["dimension"]) for r in qa_rows if r["scene_index"] is None]
    assert all(general.count(k) <= 3 for k in set(general)), "at most max_per_video_dimension per video dimension"
