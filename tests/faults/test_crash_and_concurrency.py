"""kill -9 in the middle of every stage, each time followed by a re-run, ends in the same export
as an uninterrupted run; two runs of one run id at once end in one clean result."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from glave_tasks.cli import main
from glave_tasks.config import S3Options
from glave_tasks.host import pid_alive
from glave_tasks.layout import RunLayout
from glave_tasks.stages import available
from glave_tasks.store import ArtifactStore
from tests.support.committed import Committed

from .conftest import Ledger
from .harness import export_snapshot, glave_popen, glave_subprocess, leftovers, make_inbox

RUN = "night-1"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The night's inputs and the export of one uninterrupted run (the reference)."""
    base = tmp_path_factory.mktemp("night")
    fates = make_inbox(base / "inbox")
    store = base / "reference"
    code = main(["run", "--input", str(base / "inbox"), "--run-id", RUN, "--store", str(store), "--json"])
    assert code == 0
    snap = export_snapshot(ArtifactStore(str(store)), RUN)
    assert len([f for f in snap["files"] if f.startswith("json/")]) == 1
    return {"inbox": base / "inbox", "fates": fates, "reference": snap}


def account(store: ArtifactStore, night: dict[str, Any], ledger: Ledger) -> None:
    """Every input is either published once or recorded as failed with its reason; nothing twice."""
    snap = export_snapshot(store, RUN)
    videos = snap["parquet/videos.parquet"]
    published = [v["file_name"] for v in videos]
    errors = store.read_table(Committed(store, RUN).table("ingest", 0, "errors")).to_pylist()
    failed = {e["video_id"]: e["reason"] for e in errors}
    manifest = store.read_table(RunLayout(RUN).videos_table).to_pylist()
    names = {r["video_id"]: r["file_name"] for r in manifest}
    fates = {**{n: "published" for n in published}, **{names[v]: r for v, r in failed.items()}}
    ledger.count("inputs_tried", len(night["fates"]))
    ledger.count("inputs_accounted", sum(fates.get(n) == f for n, f in night["fates"].items()))
    ledger.count("records_lost", max(0, len(night["reference"]["parquet/videos.parquet"]) - len(set(published))))
    ledger.count("records_duplicated", len(published) - len(set(published)))
    assert fates == night["fates"]


def test_kill_9_in_every_stage_then_rerun_gives_the_identical_export(night: dict[str, Any], tmp_path: Path,
                                                                     ledger: Ledger) -> None:
    store_root = tmp_path / "store"
    args = ["run", "--input", str(night["inbox"]), "--run-id", RUN, "--store", str(store_root), "--json"]
    store = ArtifactStore(str(store_root))
    for stage in available():
        killed = glave_subprocess(args, kill_stage=stage)
        ledger.inject(f"kill9_{stage}")
        assert killed.returncode == -9, killed.stderr[-3000:]
        layout = RunLayout(RUN)
        # Killed mid-stage: that stage's shard holds data but no commit; earlier stages are committed.
        assert store.list(layout.shard_prefix(stage, 0)) and not store.exists(layout.commit(stage, 0))
        assert all(store.exists(layout.commit(s, 0)) for s in available()[:available().index(stage)])
        assert not store.exists(f"published/{RUN}/dataset_card.json")
    done = glave_subprocess(args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert export_snapshot(store, RUN) == night["reference"]
    assert leftovers(store, RUN) == []
    for stage in available():
        ledger.survive(f"kill9_{stage}")
    account(store, night, ledger)


def test_two_runs_of_one_run_id_at_once_give_one_clean_result(night: dict[str, Any], tmp_path: Path,
                                                              s3_endpoint: str, s3_bucket: str, ledger: Ledger) -> None:
    root = f"s3://{s3_bucket}/glave"
    cfg = tmp_path / "glave.yaml"
    cfg.write_text(json.dumps({"store": {"root": root, "local_cache": str(tmp_path / "cache"),
                                         "s3": {"endpoint_url": s3_endpoint}, "lease_ttl_s": 10}}))
    args = ["run", "--input", str(night["inbox"]), "--run-id", RUN, "--config", str(cfg), "--json"]
    ledger.inject("concurrent_run")
    first = glave_popen(args)
    time.sleep(1.0)  # the second starts while the first is under way
    second = glave_popen(args, env={"GLAVE_CACHE_TAG": "second"})
    outs = [p.communicate(timeout=600) for p in (first, second)]
    codes = [first.returncode, second.returncode]
    # Both finish cleanly: the later writer waits on each lease, then finds the shard committed
    # with the same fingerprint and leaves it alone.
    assert codes == [0, 0], [o[1][-2000:] for o in outs]
    statuses = [[(o["stage"], o["status"]) for o in json.loads(out)["outcomes"]] for out, _ in outs]
    assert sorted(s for st in statuses for _, s in st).count("committed") == len(available())
    store = ArtifactStore(root, S3Options(endpoint_url=s3_endpoint))
    assert export_snapshot(store, RUN) == night["reference"]
    assert leftovers(store, RUN) == []
    ledger.survive("concurrent_run")
    account(store, night, ledger)


def test_kill_9_of_a_run_while_its_model_server_starts_leaves_no_server_behind(tmp_path: Path,
                                                                               ledger: Ledger) -> None:
    """``glave run`` launches its model server in a session of its own when the run begins; the
    server's guard stops it once the run is gone, so a SIGKILLed run holds no port or accelerator."""
    pid_file = tmp_path / "server.pid"
    server_python = tmp_path / "server-python"  # stands in for the LLM environment: never ready
    server_python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    server_python.chmod(0o755)
    config = tmp_path / "glave.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"root": str(tmp_path / "store"), "local_cache": str(tmp_path / "cache")},
        "engine": {"backend": "vllm", "model": "tiny"},
        "model_server": {"python": str(server_python), "device": "cpu", "startup_timeout_s": 600},
    }))
    inbox = tmp_path / "inbox"
    make_inbox(inbox)
    run = glave_popen(["run", "--config", str(config), "--input", str(inbox), "--run-id", "night-server"])
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()[1][-3000:]
        time.sleep(0.1)
    server = int(pid_file.read_text())
    assert pid_alive(server)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    ledger.inject("kill9_while_model_server_starts")
    deadline = time.monotonic() + 15
    while pid_alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(server), "the model server outlived the killed run"
    ledger.survive("kill9_while_model_server_starts")
