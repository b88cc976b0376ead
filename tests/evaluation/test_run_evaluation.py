"""Evaluation of pipeline runs in the store (rules engine captions and QA): the self-consistency
gate in validate (embedded judge), `glave evaluate --run-id` with a fixture-answer judge server,
the report section with the run-vs-run comparison, MLflow metrics, and the regression check
against a baseline run whose captions were better."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from glave_tasks import schemas
from glave_tasks.cli import main
from glave_tasks.evaluation.gate import CHECK, self_consistency
from glave_tasks.evaluation.pipeline import RegressionDetected, check_regression
from glave_tasks.evaluation.questions import from_records
from glave_tasks.evaluation.sources import from_run
from glave_tasks.layout import RunLayout
from glave_tasks.quality.record_format import Record
from glave_tasks.report.build import build_report
from glave_tasks.store import ArtifactStore
from tests.support import make_config
from tests.support.committed import Committed
from tests.support.openai_server import FakeServer, completion
from tests.support.seed import recommit
from tests.support.seed_run import seed_captioned_run

from . import stories

GOOD, BAD = "r-eval-good", "r-eval-bad"


def _copy_run_with_swapped_captions(store: ArtifactStore, src: str, dst: str) -> None:
    """``dst``: the same run, except each video carries the other video's caption."""
    for key in store.list(RunLayout(src).prefix):
        store.write_bytes(RunLayout(dst).prefix + key[len(RunLayout(src).prefix):], store.read_bytes(key))
    key = Committed(store, dst).table("bridge", 0, "video_captions")
    table = store.read_table(key, schemas.VIDEO_CAPTIONS)
    captions = table["caption"].to_pylist()
    store.write_table(key, table.set_column(table.schema.get_field_index("caption"), "caption",
                                            pa.array(captions[1:] + captions[:1], pa.string())))
    recommit(store, dst, "bridge", 0)


def fixture_judge(store: ArtifactStore, run_id: str) -> Callable[[dict[str, Any], int], tuple[int, Any]]:
    """A scripted judge (not a model): the correct letter when the caption in the prompt is the
    question's own video caption, E otherwise. Answers come from the run's own QA."""
    source = from_run(store, run_id)
    # Keyed by the options too: a templated question asked of two scenes has its options in
    # another order (letters are shuffled per video, scene and question).
    own: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for q in from_records(source.records.values()).questions:
        own[(source.caption(q.video_id), q.question, tuple(q.options))] = q.answer

    def respond(body: dict[str, Any], n: int) -> tuple[int, Any]:
        text = body["messages"][0]["content"][-1]["text"]
        caption = text.split('"""\n', 1)[1].split('\n"""', 1)[0]
        question = re.search(r"^Question: (.*)$", text, re.M).group(1)  # type: ignore[union-attr]
        options = tuple(line for line in text.splitlines() if re.match(r"^[A-D]\. ", line))
        letter = own.get((caption, question, options), "E")
        return 200, completion(json.dumps({"reason": "fixture", "answer": letter}), model="fixture-judge")

    return respond


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("runs")
    config = make_config(tmp)
    store = ArtifactStore(config.store.root)
    seed_captioned_run(store, config, GOOD, tmp, stages=("caption", "bridge", "qa", "validate"))
    _copy_run_with_swapped_captions(store, GOOD, BAD)
    server = FakeServer(fixture_judge(store, GOOD))
    config = make_config(tmp, evaluate={"regression_margin": 0.05, "judge": {
        "backend": "openai", "base_url": server.url, "model": "fixture-judge", "retries": 0}})
    config_file = tmp / "glave.yaml"
    config_file.write_text(config.to_yaml())
    yield {"store": store, "config": config, "config_file": str(config_file), "tmp": tmp}
    server.close()


def _cli(runs: dict[str, Any], *args: str) -> int:
    return main([*args, "--config", runs["config_file"]])


def test_validate_runs_the_self_consistency_gate(runs: dict[str, Any]) -> None:
    store: ArtifactStore = runs["store"]
    checks = store.read_table(Committed(store, GOOD).table("validate", 0, "checks"), schemas.CHECKS).to_pylist()
    (gate,) = [c for c in checks if c["check"] == CHECK]
    assert gate["table"] == "qa" and gate["value"] is not None
    assert "per dimension:" in gate["detail"] and "embedded-judge" in gate["detail"]
    # The embedded judge cannot read counts and directions in short rules-engine options: by
    # default it warns and never fails or blocks (fail/critical are for an LLM judge).
    assert gate["status"] in ("pass", "warn") and gate["fail_threshold"] is None and not gate["critical"]
    marker = json.loads(store.read_bytes(RunLayout(GOOD).commit("validate", 0)))
    assert marker["metrics"]["self_consistency_sampled"] > 0


def test_gate_flags_qa_a_caption_does_not_support_per_dimension_and_can_block(tmp_path: Path) -> None:
    config = make_config(tmp_path, evaluate={"gate": {"sample_size": 200, "warn": 0.2, "fail": 0.5, "critical": True}})
    good = [Record(s.video_id, stories.record(s)) for s in stories.STORIES]
    bad = [Record(s.video_id, stories.record(s)) for s in stories.swapped()]
    ok, hallucinated = self_consistency(good, config), self_consistency(bad, config)
    assert ok.sampled == hallucinated.sampled == 48
    assert ok.check.value is not None and ok.check.value <= 0.3 and not ok.check.blocking
    assert hallucinated.check.value is not None and hallucinated.check.value >= 0.8
    assert hallucinated.check.status == "fail" and hallucinated.check.blocking
    assert sum(d["unsupported"] for d in hallucinated.per_dimension.values()) == len(hallucinated.unsupported)
    assert hallucinated.per_dimension["Count"]["sampled"] == 4
    assert sum(d["sampled"] for d in ok.per_dimension.values()) == 48
    # A sample is reproducible and bounded by sample_size.
    small = make_config(tmp_path, evaluate={"gate": {"sample_size": 5, "seed": 3}})
    first, again = self_consistency(good, small), self_consistency(good, small)
    assert first.sampled == 5 and first.check.detail == again.check.detail


def test_evaluate_a_run_then_report_compare_and_mlflow(runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    store: ArtifactStore = runs["store"]
    assert _cli(runs, "evaluate", "--run-id", GOOD, "--json") == 0
    good = json.loads(capsys.readouterr().out)
    assert good["name"] == "self-qa" and good["comparison"] is None and good["scores"]["questions"] > 0
    assert good["scores"]["accuracy"] == 1.0 and good["judge"]["label"] == "openai LLM judge fixture-judge"
    prefix = f"{RunLayout(GOOD).prefix}/evaluation/self-qa"
    for name in ("votes", "answers", "scores", "skipped"):
        assert store.exists(f"{prefix}/{name}.parquet")
    scores = store.read_table(f"{prefix}/scores.parquet", schemas.EVAL_SCORES).to_pylist()
    assert {r["scope"] for r in scores} == {"overall", "dimension", "video"}
    assert {r["key"] for r in scores if r["scope"] == "video"} == {"twoshot", "static"}

    # The same QA answered from swapped captions: a regression against the good run.
    rc = _cli(runs, "evaluate", "--run-id", BAD, "--baseline", GOOD, "--json")
    bad = json.loads(capsys.readouterr().out)
    assert bad["comparison"]["baseline_run_id"] == GOOD
    # Some questions (and their letters) are the same for both videos; the rest become E.
    assert bad["scores"]["accuracy"] <= 0.5 and bad["scores"]["e_rate"] >= 0.5
    assert bad["comparison"]["regressed"] and rc == 1, "a regression past the margin fails the command"
    with pytest.raises(RegressionDetected, match="fell from"):
        check_regression(store, runs["config"], BAD, "self-qa", GOOD)
    assert _cli(runs, "evaluate-compare", "--run-id", BAD, "--name", "self-qa", "--baseline", GOOD) == 2
    assert "fell from" in capsys.readouterr().err
    assert check_regression(store, runs["config"], GOOD, "self-qa", BAD)["status"] == "ok"

    report = build_report(store, runs["config"], BAD)
    html = Path(report["html"]).read_text()
    assert "Caption evaluation" in html and 'id="plot-eval-dimensions-self-qa"' in html
    assert 'id="plot-eval-compare-self-qa"' in html and f"Compared with run {GOOD}" in html and "regressed" in html
    summary = json.loads(Path(report["summary"]).read_text())
    assert summary["evaluation"]["self-qa"]["accuracy"] == bad["scores"]["accuracy"]

    assert _cli(runs, "mlflow-log", "--run-id", BAD) == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=runs["config"].mlflow.tracking_uri)
    exp = client.get_experiment_by_name(runs["config"].mlflow.experiment)
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`glave.run_id` = '{BAD}' and tags.`glave.stage` = 'pipeline'")
    metrics = parent.data.metrics
    assert metrics["eval.self-qa.accuracy"] == pytest.approx(bad["scores"]["accuracy"])
    assert metrics["eval.self-qa.delta_vs_baseline"] == pytest.approx(bad["comparison"]["delta"])
    assert any(k.startswith("eval.self-qa.dim.") for k in metrics)
    assert parent.data.tags["glave.eval.self-qa.judge"] == "openai LLM judge fixture-judge"


def test_benchmark_questions_for_videos_outside_the_run_are_reported(runs: dict[str, Any],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bench = stories.write_benchmark(runs["tmp"] / "bench", stories.STORIES[:2])
    # One benchmark file names a video of the run by its input file stem, as published files do.
    (bench / "static.json").write_text(json.dumps({"scene_hint": {"0": "The only scene."}, "qa": {"s0": {
        "id": "s0", "scene": "-1", "dimension": "Count", "question": "How many objects move?",
        "options": ["A. None", "B. One", "C. Two", "D. Three"], "answer": "A"}}}))
    assert _cli(runs, "evaluate", "--run-id", GOOD, "--questions", str(bench), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["name"] == "benchmark" and result["scores"]["questions"] == 1
    assert result["skipped"]["by_reason"] == {"video_not_in_run": 16}
    assert result["skipped"]["videos_not_in_run"] == sorted(s.video_id for s in stories.STORIES[:2])
