"""QA stage on the rules engine: QA written from track and ingest facts must be correct, follow
the GLaVE contract, and a video whose model answers stay malformed fails alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from glave_tasks import schemas
from glave_tasks.language.engines.rules import RulesEngine
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.stages.qa import QAStage
from glave_tasks.store import ArtifactStore
from tests.support.committed import Committed
from tests.support.seed_run import seed_captioned_run

RUN = "r-qa"


@pytest.fixture
def seeded(store: ArtifactStore, config, tmp_path: Path) -> ArtifactStore:
    """A captioned, bridged shard on a local folder and on S3 (loopback)."""
    seed_captioned_run(store, config, RUN, tmp_path)
    return store


def _qa(store: ArtifactStore) -> list[dict]:
    return store.read_table(Committed(store, RUN).table("qa", 0, "qa"), schemas.QA).to_pylist()


def _answer_text(row: dict) -> str:
    return row["options"][schemas.ANSWER_LETTERS.index(row["answer_choice"])][3:]


def test_rules_qa_answers_counts_and_directions_from_the_ground_truth(seeded: ArtifactStore, config) -> None:
    out = run_stage(build_stage("qa", config), seeded, RUN, 0, show_progress=False)
    assert out.status == "committed" and out.marker["videos_failed"] == 0
    rows = _qa(seeded)
    by_q = {(r["video_id"], r["scene_index"], r["question"]): r for r in rows}
    # Scene 0: a box moving right and a disc moving down; after the cut, scene 1: a box moving left.
    expected = {
        ("twoshot", 1, "In which direction does the box move in this scene?"): "to the left",
        ("twoshot", 1, "How many boxes can be seen in this scene?"): "one",
        ("twoshot", None, "How many hard shot cuts does the video contain?"): "one",
        ("twoshot", None, "In which scene does a disc appear for the first time?"): "the first scene",
        ("static", None, "How many hard shot cuts does the video contain?"): "zero",
    }
    for key, answer in expected.items():
        assert key in by_q, f"missing {key}; have {list(by_q)}"
        assert by_q[key]["answer"] == answer and _answer_text(by_q[key]) == answer
    scene0 = {r["dimension"]: r for r in rows if r["video_id"] == "twoshot" and r["scene_index"] == 0}
    direction = scene0["Object Direction"]
    truth = {"to the right": "the box move in this scene?", "downward": "the disc move in this scene?"}
    assert direction["answer"] in truth and direction["question"].endswith(truth[direction["answer"]])


def test_qa_rows_follow_the_glave_contract(seeded: ArtifactStore, config) -> None:
    run_stage(build_stage("qa", config), seeded, RUN, 0, show_progress=False)
    rows = _qa(seeded)
    assert rows
    per_scene: dict[tuple, list[str]] = {}
    for r in rows:
        assert r["generator"] == "rules" and "qa_options@2" in r["prompt_version"]
        assert len(r["options"]) == 4 and [o[:3] for o in r["options"]] == ["A. ", "B. ", "C. ", "D. "]
        assert r["answer_choice"] in schemas.ANSWER_LETTERS and _answer_text(r) == r["answer"]
        if r["scene_index"] is None:
            assert r["dimension"] in schemas.VIDEO_DIMENSIONS
        else:
            assert r["dimension"] in schemas.SCENE_DIMENSIONS
            per_scene.setdefault((r["video_id"], r["scene_index"]), []).append(r["dimension"])
    assert all(len(d) == len(set(d)) for d in per_scene.values()), "at most one QA per scene dimension"
    assert len({r["qa_id"] for r in rows}) == len(rows)
    general = [(r["video_id"], r["dimension"]) for r in rows if r["scene_index"] is None]
    assert all(general.count(k) <= config.qa.max_per_video_dimension for k in set(general))


class GarbleOneVideo(RulesEngine):
    """The rules engine, except that every options answer for one video is not JSON."""

    def __init__(self, video_id: str) -> None:
        super().__init__()
        self.video_id = video_id
        self.calls: list[tuple[str, int]] = []

    def generate(self, requests):  # noqa: ANN001, ANN201
        self.calls.append((requests[0].task, len(requests)))
        out = super().generate(requests)
        return [replace(r, text="{not json") if r.request.task == "qa_options" and r.request.key[0] == self.video_id else r
                for r in out]


def test_malformed_answers_are_retried_then_fail_only_their_video(seeded: ArtifactStore, config) -> None:
    engine = GarbleOneVideo("static")
    out = run_stage(QAStage(config, engine=engine), seeded, RUN, 0, show_progress=False)
    assert out.status == "committed" and out.marker["videos_ok"] == ["twoshot"]
    assert out.marker["failures"] == {"malformed_model_output": 1}
    errors = seeded.read_table(Committed(seeded, RUN).table("qa", 0, "errors")).to_pylist()
    assert [(e["video_id"], e["stage"]) for e in errors] == [("static", "qa")]
    assert {r["video_id"] for r in _qa(seeded)} == {"twoshot"}
    # One engine call per level (generate, refine, options), then the malformed options re-sent alone.
    tasks = [t for t, _ in engine.calls]
    assert tasks[:3] == ["qa_scene", "qa_refine", "qa_options"]
    assert tasks[3:] == ["qa_options"] * config.engine.structured_retries
