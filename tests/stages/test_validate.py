"""Validate, report, export round trip, audit and publish on a seeded run (rules engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from glave_tasks import schemas
from glave_tasks.cli import main
from glave_tasks.discover import is_annotated
from glave_tasks.layout import RunLayout
from glave_tasks.publish import PublishBlocked, publish
from glave_tasks.report.build import build_report
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support.committed import Committed
from tests.support.seed import recommit
from tests.support.seed_run import seed_captioned_run

RUN = "r-validate"


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory):
    from glave_tasks.config import load_config

    tmp = tmp_path_factory.mktemp("validated")
    config = load_config(environ={}, overrides={"store": {"root": str(tmp / "store"), "local_cache": str(tmp / "cache")}})
    store = ArtifactStore(config.store.root)
    seed_captioned_run(store, config, RUN, tmp, stages=("caption", "bridge", "qa", "validate"))
    return store, config, tmp


def test_validate_writes_checks_for_every_table_and_none_blocks_a_clean_run(validated) -> None:
    store, config, _ = validated
    checks = store.read_table(Committed(store, RUN).table("validate", 0, "checks"), schemas.CHECKS).to_pylist()
    names = {c["check"] for c in checks}
    for table in ("probes", "keyframes", "tracks", "marks", "local_captions", "scenes", "video_captions", "qa", "videos"):
        assert f"table.{table}" in names
    for model_check in ("qa.option_matches_answer", "qa.answerable", "captions.track_coverage", "captions.hallucination",
                        "captions.motion_detail_balance", "qa.duplicates_near"):
        assert model_check in names
    blocking = [c for c in checks if c["critical"] and c["status"] == "fail"]
    assert blocking == []
    # The suites and results are committed with the shard; Data Docs are the report's (once per run).
    assert store.exists(Committed(store, RUN).file("validate", 0, "gx_results.json"))
    assert not store.list(Committed(store, RUN).file("validate", 0, "data_docs"))


def test_export_round_trip_passes_audit_with_the_run_counts(validated, tmp_path: Path) -> None:
    store, config, _ = validated
    out = tmp_path / "export"
    assert main(["export", "--run-id", RUN, "--out", str(out), "--store", store.root]) == 0
    record = json.loads((out / "json" / "twoshot.json").read_text())
    assert set(record) == {"different", "attention", "merged", "overview_caption", "scene_list", "general_qa", "caption",
                           "generator"}
    # Every record names what wrote it: engine, model id, prompt versions.
    assert record["generator"]["engine"] == "rules" and record["generator"]["model_id"] == "rules-1"
    assert {"overview", "attention", "merge", "scene_caption", "qa_options"} <= set(record["generator"]["prompt_versions"])
    assert len(record["merged"]) == len(record["attention"]) == len(record["different"])
    qa = record["scene_list"]["0"]["QA_pair"]["0"]
    assert set(qa) == {"Question", "Answer", "Dimension", "Options", "Answer_choices"}
    card = json.loads((out / "dataset_card.json").read_text())
    # The inputs' stat at discover is run bookkeeping: the same inputs export the same videos table.
    published = set(pq.read_schema(out / "parquet" / "videos.parquet").names)
    assert published == set(schemas.VIDEOS.names) - set(schemas.UNPUBLISHED_COLUMNS["videos"])
    summary_file = tmp_path / "audit.json"
    assert main(["audit", str(out / "json"), "--json-out", str(summary_file), "--html-out", str(tmp_path / "a.html"),
                 "--store", store.root]) == 0
    audit = json.loads(summary_file.read_text())
    qa_rows = store.read_table(Committed(store, RUN).table("qa", 0, "qa")).num_rows
    scenes = store.read_table(Committed(store, RUN).table("bridge", 0, "scenes")).num_rows
    assert audit["stats"]["qa"] == card["counts"]["qa"] == qa_rows
    assert audit["stats"]["scenes"] == card["counts"]["scenes"] == scenes
    assert audit["stats"]["videos"] == card["counts"]["videos"] == 2
    assert audit["blocking"] == []


def test_report_is_written_with_plots_summary_data_docs_and_trends(validated) -> None:
    store, config, _ = validated
    # An earlier nightly run of the same store, known only by its report summary.
    store.write_json(f"{RunLayout('nightly-earlier').report_prefix}/summary.json", {
        "run_id": "nightly-earlier", "created_at": "2000-01-01T00:00:00+00:00",
        "headline": {"videos": 5, "qa": 40, "qa_per_video": 8.0, "checks_failed": 2, "checks_warned": 1, "videos_failed": 1}})
    out = build_report(store, config, RUN)
    html = Path(out["html"]).read_text()
    assert html.count("<svg") >= 4 and "qa.option_matches_answer" in html
    assert "<script" not in html and "<link" not in html, "self-contained: no external script or stylesheet"
    assert 'href="data_docs/index.html"' in html
    docs = Path(out["html"]).with_name("data_docs")
    assert docs.joinpath("index.html").exists()
    # One site for the run: each suite's validation of shard 0 has its page under the shard's name.
    pages = list(docs.glob("validations/*/shard-00000/*/*.html"))
    assert {p.parts[-4] for p in pages} >= {"table_qa", "table_scenes"}
    summary = store.read_json(f"{RunLayout(RUN).report_prefix}/summary.json")
    assert summary["headline"]["qa"] > 0
    assert [r["run_id"] for r in summary["trend"]] == ["nightly-earlier", RUN]
    assert "nightly-earlier" in html


def test_publish_exports_and_marks_videos_annotated(validated, tmp_path: Path) -> None:
    store, config, _ = validated
    result = publish(store, config, RUN)
    assert result["videos"] == 2
    assert Path(result["published_to"], "json", "twoshot.json").exists()
    assert is_annotated(store, config, "twoshot") and is_annotated(store, config, "static")


def test_production_publish_refuses_rules_engine_output_and_the_index_is_per_annotator(validated) -> None:
    from glave_tasks.config import load_config
    from glave_tasks.publish import PublishBlocked, rules_engine_tables

    store, config, _ = validated
    assert rules_engine_tables(store, RUN) == ["overviews", "local_captions", "scenes", "video_captions", "qa"]
    production = config.model_copy(update={"run": config.run.model_copy(update={"dataset_purpose": "production"})})
    with pytest.raises(PublishBlocked, match="rules engine"):
        publish(store, production, RUN)
    # A video the rules engine annotated is still new to a run with a model (and to another model).
    publish(store, config, RUN)
    assert is_annotated(store, config, "twoshot")
    vlm = load_config(environ={}, overrides={"store": config.store.model_dump(),
                                            "engine": {"backend": "vllm", "model": "Qwen/Qwen2.5-VL-7B-Instruct",
                                                       "revision": "abc"}})
    assert not is_annotated(store, vlm, "twoshot")
    other = vlm.model_copy(update={"engine": vlm.engine.model_copy(update={"model": "another/model"})})
    assert not is_annotated(store, other, "twoshot")


def test_publish_refuses_when_a_critical_check_failed(validated, tmp_path: Path) -> None:
    store, config, _ = validated
    key = Committed(store, RUN).table("qa", 0, "qa")
    original = store.read_bytes(key)
    rows = store.read_table(key, schemas.QA).to_pylist()
    rows[0]["answer_choice"] = "E"  # a defect that slipped into the QA table
    store.write_table(key, schemas.rows_to_table(rows, schemas.QA), schemas.QA)
    recommit(store, RUN, "qa", 0)
    try:
        run_stage(build_stage("validate", config), store, RUN, 0, force=True, show_progress=False)
        with pytest.raises(PublishBlocked, match="qa.answer_letter"):
            publish(store, config, RUN, str(tmp_path / "nope"))
        assert main(["publish", "--run-id", RUN, "--out", str(tmp_path / "nope"), "--store", store.root]) == 2
        assert not (tmp_path / "nope").exists()
    finally:
        store.write_bytes(key, original)
        recommit(store, RUN, "qa", 0)
        run_stage(build_stage("validate", config), store, RUN, 0, force=True, show_progress=False)


def test_audit_of_a_run_id_reads_its_tables_with_tracker_facts(validated, tmp_path: Path) -> None:
    store, config, _ = validated
    out = tmp_path / "audit.json"
    assert main(["audit", RUN, "--store", store.root, "--json-out", str(out)]) == 0
    audit = json.loads(out.read_text())
    checks = {c["check"]: c for c in audit["checks"]}
    assert checks["captions.hallucination"]["status"] != "skip", "a run has detector labels to compare with"
    assert audit["stats"]["qa"] == store.read_table(Committed(store, RUN).table("qa", 0, "qa")).num_rows


def test_audit_exits_non_zero_on_a_critical_failure(tmp_path: Path) -> None:
    from tests.quality.test_expectations import clean_record

    record = clean_record()
    record["general_qa"]["0"]["Answer_choices"] = "E"
    (tmp_path / "bad.json").write_text(json.dumps(record))
    assert main(["audit", str(tmp_path / "bad.json"), "--store", str(tmp_path / "store")]) == 1


def test_trend_keeps_the_last_runs_in_one_file(validated) -> None:
    from glave_tasks.report.build import TREND_KEY, TREND_KEYS, TREND_RUNS

    store, config, _ = validated
    store.write_json(TREND_KEY, [{"run_id": f"n{i:03d}", "created_at": f"2001-01-01T00:{i // 60:02d}:{i % 60:02d}",
                                  **{k: i for k in TREND_KEYS}} for i in range(TREND_RUNS + 5)])
    build_report(store, config, RUN)
    rows = store.read_json(TREND_KEY)
    assert len(rows) == TREND_RUNS and rows[-1]["run_id"] == RUN
    assert rows[0]["run_id"] == "n006"  # the oldest fell off; earlier runs' summaries are not read
