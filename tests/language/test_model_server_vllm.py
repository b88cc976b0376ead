"""One real ``vllm serve`` of the tiny random model on 127.0.0.1 serves caption, bridge and qa of
two videos: the run starts the engine once, every engine stage is a client, the server is gone
afterwards. (The stages run in the main environment; only the server runs in ``.venv-llm``.)"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from glave_tasks.config import DEFAULT_TASKS
from glave_tasks.language.model_server import read_record
from glave_tasks.local_run import run_pipeline
from glave_tasks.store import ArtifactStore
from tests.support import make_config
from tests.support.committed import Committed
from tests.support.llm_env import LLM_PYTHON, build_tiny_model
from tests.support.synthetic import static_video, two_shot_video

pytestmark = pytest.mark.slow
RUN = "r-model-server"


def test_one_server_start_serves_caption_bridge_and_qa_of_two_videos(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "model")
    # A random model never samples its one end token on purpose: every special token ends an
    # answer here (~2% a step, ~55 tokens on average), so free-text answers finish within budget.
    gen = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": list(range(7))}))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    two_shot_video(inbox / "a.mp4")
    static_video(inbox / "b.mp4", seconds=4.0)
    config = make_config(
        tmp_path,
        engine={"backend": "vllm", "model": "tiny-qwen2-vl", "revision": "test-rev", "weights": str(model),
                "dtype": "bfloat16", "max_model_len": 4096, "max_images_per_prompt": 4,
                "structured_retries": 2, "concurrency": 16,
                "sampling": {"max_tokens": 200, "temperature": 0.8, "seed": 0},
                # A random model: short budgets keep CPU decoding quick (real budgets in DEFAULT_TASKS).
                "tasks": {task: {"max_tokens": 200} for task in DEFAULT_TASKS}},
        model_server={"python": str(LLM_PYTHON), "cpu_kv_cache_gib": 1, "startup_timeout_s": 600},
        run={"max_failure_ratio": 1.0},
    )
    store = ArtifactStore(config.store.root)
    started = time.perf_counter()
    result = run_pipeline(store, config, str(inbox), RUN, stages=["ingest", "track", "caption", "bridge", "qa"],
                          show_progress=False)
    wall = time.perf_counter() - started
    record = read_record(store, RUN)
    assert record is not None
    durations = {o["stage"]: o["duration_s"] for o in result["outcomes"]}
    print(json.dumps({"wall_s": round(wall, 1), "server_startup_s": record["startup_s"], "stages_s": durations,
                      "failed": result["failed"]}))
    # A random model's QA JSON may run past its short budget for every video of the shard: that
    # shard then does not commit (a shard whose every video failed never does), recorded as the
    # model's output, never as the server's fault. Every other stage committed.
    for failure in result["failed"]:
        assert failure["stage"] == "qa" and "all of its videos failed" in failure["error"], failure
        assert "model_output" in failure["error"] and "infrastructure" not in failure["error"], failure
    assert {o["stage"] for o in result["outcomes"]} >= {"ingest", "track", "caption", "bridge"}

    # One engine start for the whole run, counted twice: the run's record and the server's own log.
    assert result["model_server"]["engine_starts"] == 1 and record["engine_starts"] == 1
    server_log = Path(record["log"]).read_text(errors="replace")
    assert server_log.count("Initializing a V1 LLM engine") == 1, server_log[-3000:]
    assert record["model"] == "tiny-qwen2-vl" and record["url"].startswith("http://127.0.0.1:")
    assert "--served-model-name" in record["flags"] and "--structured-outputs-config" in record["flags"]

    # Launched with the run, so its start-up overlapped ingest (as the DAG's setup task does).
    launched = datetime.fromisoformat(record["started_at"]) - timedelta(seconds=record["startup_s"])
    ingest = store.read_json(f"runs/{RUN}/ingest/shard-{result['shards'][0]:05d}/_COMMIT.json")
    assert launched < datetime.fromisoformat(ingest["finished_at"])

    # Torn down after the last engine stage: the process group is gone.
    assert record["stopped_at"]
    assert not Path(f"/proc/{record['pid']}").exists()

    # Every engine stage's rows came from the server's model, with provenance.
    committed = Committed(store, RUN)
    for stage, table in (("caption", "overviews"), ("caption", "local_captions"), ("bridge", "scenes"), ("qa", "qa")):
        rows = []
        for shard in result["shards"]:
            # QA may legitimately not commit (above); every other stage must have.
            if stage == "qa" and committed.run.commit(stage, shard) is None:
                continue
            rows += store.read_table(committed.table(stage, shard, table)).to_pylist()
        assert rows or stage == "qa", f"{stage} committed no {table} rows"
        for row in rows:
            assert row["generator"] == "vllm" and row["model_id"] == "tiny-qwen2-vl", (stage, table, row)
    overviews = sum(store.read_table(committed.table("caption", s, "overviews")).num_rows for s in result["shards"])
    assert overviews == 2  # both videos were captioned through the server
    # The stages asked the server (not an engine of their own): request counts in their commits.
    caption_marker = store.read_json(f"runs/{RUN}/caption/shard-{result['shards'][0]:05d}/_COMMIT.json")
    assert caption_marker["metrics"]["engine_calls"] >= 1

    # MLflow records the server's model, revision and flags, and the one engine start.
    from mlflow import MlflowClient

    from glave_tasks.mlflow_log import log_run

    logged = log_run(store, config, RUN)
    mlflow_run = MlflowClient(tracking_uri=config.mlflow.tracking_uri).get_run(logged["mlflow_run_id"])
    params = mlflow_run.data.params
    assert params["model_server.model"] == "tiny-qwen2-vl" and params["model_server.revision"] == "test-rev"
    assert "--max-model-len 4096" in params["model_server.flags"]
    assert mlflow_run.data.metrics["model_server.engine_starts"] == 1
