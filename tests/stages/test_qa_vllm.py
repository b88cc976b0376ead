"""The QA stage on the real vLLM engine with a tiny random model (gibberish text, real path):
one engine batch per dependency level across every video, schema-constrained answers, and
malformed answers recorded as per-video failures with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glave_tasks import schemas
from glave_tasks.config import load_config
from glave_tasks.store import ArtifactStore
from tests.support.llm_env import build_tiny_model, run_llm
from tests.support.seed_run import seed_captioned_run

pytestmark = pytest.mark.slow
RUN = "r-qa-vllm"


def test_qa_stage_batches_levels_through_vllm(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    config = load_config(environ={}, overrides={"store": {"root": str(store_dir), "local_cache": str(tmp_path / "cache")}})
    seed_captioned_run(ArtifactStore(str(store_dir)), config, RUN, tmp_path)  # captions and scenes by the rules engine
    model = build_tiny_model(tmp_path / "model")
    out = tmp_path / "qa.json"
    run_llm("-m", "tests.support.vllm_qa_scenario", str(model), str(store_dir), RUN, str(out), timeout=900)
    result = json.loads(out.read_text())
    print(json.dumps({"batches": [len(b) for b in result["batches"]], "metrics": result["marker"].get("metrics"), "qa": len(result.get("qa", [])), "errors": [(e["video_id"], e["reason"]) for e in result.get("errors", [])]}))
    batches = result["batches"]
    # Level 1: every scene of every video plus one request per video, in one engine call.
    assert sorted(batches[0]) == sorted(["qa_scene"] * 3 + ["qa_video"] * 2)
    for batch in batches:
        assert len(set(batch)) == 1 or set(batch) <= {"qa_scene", "qa_video"}, "one dependency level per call"
    marker = result["marker"]
    assert marker["metrics"]["requests_qa_scene"] == 3 and marker["metrics"]["requests_qa_video"] == 2
    for row in result.get("qa", []):
        assert row["generator"] == "vllm" and row["model_id"] == "tiny-qwen2-vl"
        assert len(row["options"]) == 4 and row["answer_choice"] in schemas.ANSWER_LETTERS
        assert row["dimension"] in schemas.ALL_DIMENSIONS
    for err in result.get("errors", []):
        assert err["stage"] == "qa" and err["reason"] in ("malformed_model_output", "qa_bad_options")
    assert marker["videos_failed"] == len({e["video_id"] for e in result.get("errors", [])})
