"""Operators' tools on a real run: `glave rerun` redoes exactly the asked stage x shard cells, and
`glave mlflow-log` records the run in MLflow (SQLite) from its commit markers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.cli import main as glave
from glave_tasks.config import GlaveConfig, load_config
from glave_tasks.layout import RunLayout
from glave_tasks.local_run import run_pipeline
from glave_tasks.mlflow_log import config_models, log_run
from glave_tasks.run import Run
from glave_tasks.stages import available
from glave_tasks.store import ArtifactStore
from tests.support import synthetic

RUN = "ops-run"
SEEDED = ("ingest", "track", "caption", "bridge")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[GlaveConfig, ArtifactStore, Path]:
    """Two tiny videos in two shards, taken through ingest, track, caption and bridge."""
    tmp = tmp_path_factory.mktemp("ops")
    inbox = tmp / "inbox"
    inbox.mkdir()
    synthetic.two_shot_video(inbox / "a.mp4")
    synthetic.static_video(inbox / "b.mp4", seconds=2.0)
    config_file = tmp / "glave.yaml"
    config_file.write_text(json.dumps({
        "run": {"shard_size": 1},
        "store": {"root": str(tmp / "store"), "local_cache": str(tmp / "cache")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_location": str(tmp / "mlruns")},
    }))
    config = load_config(config_file, environ={})
    store = ArtifactStore(config.store.root)
    result = run_pipeline(store, config, str(inbox), RUN, stages=list(SEEDED), show_progress=False)
    assert not result["failed"] and result["shards"] == [0, 1]
    return config, store, config_file


def _marker_bytes(store: ArtifactStore, stage: str, shard: int) -> bytes:
    return store.read_bytes(RunLayout(RUN).commit(stage, shard))


def test_rerun_one_shard_leaves_every_other_shard_untouched(seeded, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    config, store, config_file = seeded
    before = {(s, k): _marker_bytes(store, s, k) for s in SEEDED for k in (0, 1)}
    assert glave(["rerun", "--run-id", RUN, "--stage", "ingest", "--shard", "1", "--config", str(config_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(o["stage"], o["shard"], o["status"]) for o in out["outcomes"]] == [("ingest", 1, "committed")]
    after = {(s, k): _marker_bytes(store, s, k) for s in SEEDED for k in (0, 1)}
    changed = {cell for cell in before if before[cell] != after[cell]}
    assert changed == {("ingest", 1)}
    # Same inputs, same config: the redone shard has the same fingerprint (deterministic stage).
    assert json.loads(after[("ingest", 1)])["fingerprint"] == json.loads(before[("ingest", 1)])["fingerprint"]


def test_rerun_downstream_redoes_later_stages_of_that_shard_only(seeded, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    config, store, config_file = seeded
    before = {(s, k): _marker_bytes(store, s, k) for s in SEEDED for k in (0, 1)}
    assert glave(["rerun", "--run-id", RUN, "--stage", "caption", "--shard", "0", "--downstream",
                  "--config", str(config_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    later = available()[available().index("caption"):]
    assert out["stages"] == later and out["failed"] == []
    assert {(o["stage"], o["shard"]) for o in out["outcomes"]} == {(s, 0) for s in later}
    for cell, data in before.items():
        stage, shard = cell
        redone = shard == 0 and stage in later
        assert (_marker_bytes(store, stage, shard) != data) == redone, cell
    for stage in later:
        assert Run(store, RUN).commit(stage, 1) is None or stage in SEEDED


def test_rerun_rejects_unknown_stage_and_shard(seeded, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, _, config_file = seeded
    assert glave(["rerun", "--run-id", RUN, "--stage", "colorize", "--config", str(config_file)]) == 2
    assert "unknown stage 'colorize'" in capsys.readouterr().err
    assert glave(["rerun", "--run-id", RUN, "--stage", "ingest", "--shard", "7", "--config", str(config_file)]) == 2
    assert "no shard 7" in capsys.readouterr().err


def _mlflow(config: GlaveConfig) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=config.mlflow.tracking_uri, registry_uri=config.mlflow.tracking_uri)


def test_mlflow_log_records_one_run_with_a_nested_run_per_stage(seeded) -> None:  # type: ignore[no-untyped-def]
    config, store, _ = seeded
    store.write_bytes(f"{RunLayout(RUN).report_prefix}/index.html", b"<html>quality report</html>")
    result = log_run(store, config, RUN)
    client = _mlflow(config)
    parent = client.get_run(result["mlflow_run_id"])
    assert parent.data.tags["glave.run_id"] == RUN
    assert parent.data.params["ingest.similarity_threshold"] == str(config.ingest.similarity_threshold)
    assert parent.data.metrics["videos"] == 2
    children = client.search_runs([result["experiment_id"]], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_stage = {c.data.tags["glave.stage"]: c for c in children}
    ran = [s for s in available() if Run(store, RUN).commit(s, 0) is not None]
    assert set(by_stage) == set(ran) and result["stages"] == ran
    for stage, child in by_stage.items():
        markers = [Run(store, RUN).commit(stage, k) for k in (0, 1)]
        markers = [m for m in markers if m]
        m = child.data.metrics
        assert m["videos_ok"] == sum(len(x["videos_ok"]) for x in markers)
        assert m["shards_committed"] == len(markers)
        for count in markers[0]["counts"]:
            assert m[count] == sum(x["counts"].get(count, 0) for x in markers)
        for key, value in markers[0]["prompts"].items():
            assert child.data.params[f"prompt.{key}"] == value
    # Model references from the markers are registered as external model versions.
    caption_models = Run(store, RUN).commit("caption", 0)["models"]
    for key, ref in caption_models.items():
        (version,) = client.search_model_versions(f"name='glave-caption-{key}'")
        assert version.source == ref and version.run_id == by_stage["caption"].info.run_id
    assert "report/index.html" in [f.path for f in client.list_artifacts(parent.info.run_id, "report")]


def test_mlflow_log_again_reuses_the_run_and_model_versions(seeded, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    config, store, config_file = seeded
    first = log_run(store, config, RUN)
    assert glave(["mlflow-log", "--run-id", RUN, "--config", str(config_file), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["mlflow_run_id"] == first["mlflow_run_id"]
    assert second["models"] == first["models"]
    client = _mlflow(config)
    assert len(client.search_runs([first["experiment_id"]], f"tags.`glave.run_id` = '{RUN}' and tags.`glave.stage` = 'pipeline'")) == 1


def test_model_references_in_config_are_tracked() -> None:
    config = load_config(environ={}, overrides={
        "track": {"detector": {"backend": "ultralytics", "weights": "s3://models/det.pt"},
                  "segmenter": {"backend": "sam2", "checkpoint": "s3://models/sam2.pt"}},
        "engine": {"backend": "vllm", "model": "Qwen/Qwen2-VL-2B-Instruct", "revision": "abc123"},
    })
    refs = config_models(config)
    assert refs["track"] == {"detector": "s3://models/det.pt",
                             "segmenter": "configs/sam2.1/sam2.1_hiera_t.yaml@s3://models/sam2.pt"}
    assert refs["caption"] == {"engine": "vllm", "model": "Qwen/Qwen2-VL-2B-Instruct", "revision": "abc123"}
    assert refs["qa"]["model"] == refs["bridge"]["model"] == "Qwen/Qwen2-VL-2B-Instruct"


def test_glave_run_can_log_to_mlflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "s.mp4", seconds=2.0)
    config_file = tmp_path / "glave.yaml"
    config_file.write_text(json.dumps({
        "store": {"root": str(tmp_path / "store")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "artifact_location": str(tmp_path / "mlruns")},
    }))
    assert glave(["run", "--input", str(inbox), "--run-id", "with-mlflow", "--stages", "ingest", "--mlflow",
                  "--config", str(config_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mlflow"]["stages"] == ["ingest"]
    config = load_config(config_file, environ={})
    run = _mlflow(config).get_run(result["mlflow"]["mlflow_run_id"])
    assert run.data.tags["glave.run_id"] == "with-mlflow"
