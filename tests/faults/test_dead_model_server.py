"""A model server that dies is infrastructure, not a bad video.

Clients wait for it within ``engine.server_wait_s`` and carry on when it is back; past that the
stage ends with exit 3, no video blamed, no shard committed. ``glave run`` restarts its own server
once (on the same port); a second death ends the run with exit 3. Stopping a server stops its
whole session, leader dead or not: no orphaned engine core survives the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from glave_tasks.config import EngineConfig
from glave_tasks.errors import ModelServerUnavailable
from glave_tasks.host import pid_alive
from glave_tasks.language import LLMRequest
from glave_tasks.language import model_server as ms
from glave_tasks.language.engines.openai import OpenAIEngine
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.support import make_config
from tests.support.synthetic import Shot, write_video

from .conftest import Ledger
from .harness import glave_subprocess
from .server_process import interpreter, lives
from .servers import ModelServer, Reply

pytestmark = pytest.mark.faults

RUN = "night-dead-server"


def _engine(url: str, **kw: Any) -> OpenAIEngine:
    cfg = EngineConfig(backend="openai", base_url=url, model="served-model",
                       **{"timeout_s": 5, "retries": 2, "concurrency": 4, "request_deadline_s": 30, **kw})
    return OpenAIEngine(cfg)


def _wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- the client -------------------------------------------------------------------------------
def test_requests_wait_for_a_server_that_comes_back(ledger: Ledger) -> None:
    """Down for 4 s (longer than the tries' backoff) and back on its port: every request is
    answered, none is recorded as failed, and the wait is not charged to the request deadline."""
    first = ModelServer(lambda body, n: Reply.ok("before"))
    port = int(first.httpd.server_address[1])
    first.close()
    ledger.inject("model_server_down")
    back: list[ModelServer] = []
    timer = threading.Timer(4.0, lambda: back.append(ModelServer(lambda body, n: Reply.ok("after"), port=port)))
    timer.start()
    try:
        started = time.monotonic()
        out = _engine(first.url, server_wait_s=30, request_deadline_s=3).generate(
            [LLMRequest(task="t", prompt=p) for p in "abc"])
        took = time.monotonic() - started
    finally:
        timer.join()
        for s in back:
            s.close()
    assert [(r.error, r.text) for r in out] == [(None, "after")] * 3
    assert 3.5 < took < 15, took
    ledger.survive("model_server_down")


def test_a_server_that_stays_down_raises_model_server_unavailable(ledger: Ledger) -> None:
    gone = ModelServer(lambda body, n: Reply.ok("never"))
    gone.close()
    ledger.inject("model_server_gone")
    started = time.monotonic()
    with pytest.raises(ModelServerUnavailable, match="engine.server_wait_s") as caught:
        _engine(gone.url, server_wait_s=1.5).generate([LLMRequest(task="t", prompt=p) for p in "ab"])
    assert caught.value.exit_code == 3
    assert 1.4 < time.monotonic() - started < 8
    ledger.survive("model_server_gone")


def test_an_unhealthy_server_is_waited_for_and_a_bad_request_is_not(ledger: Ledger) -> None:
    """503 from a server whose health says 503: waited for. A 400 from a healthy one: that request's
    own failure at once, while the other requests are answered."""
    server = ModelServer(lambda body, n: Reply.error(400) if "bad" in str(body) else
                         Reply.ok("fine") if server.healthy else Reply.error(503))
    server.healthy = False
    timer = threading.Timer(2.0, lambda: setattr(server, "healthy", True))
    timer.start()
    ledger.inject("model_server_unhealthy")
    try:
        out = _engine(server.url, server_wait_s=30, retries=0).generate(
            [LLMRequest(task="t", prompt="good"), LLMRequest(task="t", prompt="bad")])
    finally:
        timer.join()
        server.close()
    assert out[0].ok and out[0].text == "fine"
    assert out[1].error == "model_http_error" and "HTTP 400" in out[1].error_detail
    ledger.survive("model_server_unhealthy")


# -- a stage and a run against a server process that dies -------------------------------------
@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store where ingest and track of two videos are committed (the engine stages' inputs)."""
    from glave_tasks.cli import main

    base = tmp_path_factory.mktemp("dead-server")
    inbox = base / "inbox"
    inbox.mkdir()
    for i, grey in enumerate((90, 160)):
        write_video(inbox / f"v{i}.mp4", [Shot(2.0, (grey, grey, grey), texture_seed=i + 1)])
    config = base / "glave.yaml"
    config.write_text(yaml.safe_dump(_config(base)))
    code = main(["run", "--config", str(config), "--input", str(inbox), "--run-id", RUN, "--stages", "ingest,track",
                 "--json"])
    assert code == 0
    return base


def _config(base: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "store": {"root": str(base / "store"), "local_cache": str(base / "cache")},
        # The case of the report: a shard with every video failed would still commit.
        "run": {"max_failure_ratio": 1.0},
    }
    return {**config, **sections}


@pytest.fixture
def night(tracked: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the tracked store; every stand-in process started under it is killed afterwards."""
    for name in ("store", "cache", "inbox"):
        if (tracked / name).exists():
            shutil.copytree(tracked / name, tmp_path / name, symlinks=True)
    yield tmp_path
    for pid in {p for life in lives(tmp_path / "server") for p in life}:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _run_caption(night: Path, engine: dict[str, Any], **sections: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    config = night / "glave.yaml"
    config.write_text(yaml.safe_dump(_config(night, engine=engine, **sections)))
    return glave_subprocess(["run", "--config", str(config), "--input", str(night / "inbox"), "--run-id", RUN,
                             "--stages", "ingest,track,caption", "--json"], timeout=180)


def _error_reasons(store: ArtifactStore, stage: str) -> list[str]:
    return [r for key in store.list(RunLayout(RUN).prefix) if key.endswith("errors.parquet") and f"/{stage}/" in key
            for r in store.read_table(key).column("reason").to_pylist()]


def _assert_infrastructure_failure(night: Path, proc: subprocess.CompletedProcess[str]) -> None:
    store = ArtifactStore(str(night / "store"))
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "model server" in proc.stderr
    layout = RunLayout(RUN)
    assert not store.exists(layout.commit("caption", 0))
    assert store.read_json(layout.failed("caption", 0))["reason"] == "infrastructure"
    assert "model_unreachable" not in _error_reasons(store, "caption")


def _assert_no_process_left(night: Path) -> None:
    for server, child in lives(night / "server"):
        _wait_until(lambda s=server, c=child: not pid_alive(s) and not pid_alive(c), 10, "the stand-in's processes")


def test_a_stage_whose_server_dies_ends_as_infrastructure(night: Path, ledger: Ledger) -> None:
    """A server nobody restarts (started by hand, or the DAG's setup task) dies mid-stage: the
    stage waits ``server_wait_s``, then exits 3 without blaming a video or committing."""
    script = interpreter(night / "server", die_at=3, dying_lives=99)
    port = ms.free_port("127.0.0.1")
    server = subprocess.Popen([str(script), "-m", ms.SERVER_MODULE, "--served-model-name", "served-model",
                               "--port", str(port)], start_new_session=True)
    try:
        _wait_until(lambda: ms._healthy(f"http://127.0.0.1:{port}/v1"), 30, "the stand-in server")
        config = night / "glave.yaml"
        config.write_text(yaml.safe_dump(_config(night, engine={
            "backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "served-model",
            "server_wait_s": 3, "retries": 1, "timeout_s": 5})))
        ledger.inject("model_server_killed_mid_stage")
        started = time.monotonic()
        proc = glave_subprocess(["stage", "caption", "--run-id", RUN, "--shard", "0", "--config", str(config)],
                                timeout=120)
        assert time.monotonic() - started < 60
    finally:
        server.kill()
        server.wait()
    _assert_infrastructure_failure(night, proc)
    assert len(lives(night / "server")) == 1
    ledger.survive("model_server_killed_mid_stage")


def test_a_run_whose_server_dies_twice_exits_3(night: Path, ledger: Ledger) -> None:
    script = interpreter(night / "server", die_at=3, dying_lives=99)
    started = time.monotonic()
    proc = _run_caption(night, {"backend": "vllm", "model": "tiny", "server_wait_s": 90, "retries": 1},
                        model_server={"python": str(script), "device": "cpu", "startup_timeout_s": 60})
    ledger.inject("model_server_killed_mid_stage", 2)
    _assert_infrastructure_failure(night, proc)
    assert len(lives(night / "server")) == 2  # restarted once, not again
    # The second death (after its restart was ready, or while it was starting) is final: the
    # clients were told at once, not after server_wait_s.
    assert "is gone: " in proc.stderr and time.monotonic() - started < 60, proc.stderr[-3000:]
    record = ms.read_record(ArtifactStore(str(night / "store")), RUN)
    assert record is not None and record["restarts"] == 1 and record["stopped_at"]
    _assert_no_process_left(night)
    ledger.survive("model_server_killed_mid_stage", 2)


def test_a_run_whose_server_dies_once_restarts_it_and_completes(night: Path, ledger: Ledger) -> None:
    script = interpreter(night / "server", die_at=3, dying_lives=1)
    proc = _run_caption(night, {"backend": "vllm", "model": "tiny", "server_wait_s": 30, "retries": 1},
                        model_server={"python": str(script), "device": "cpu", "startup_timeout_s": 60})
    ledger.inject("model_server_killed_mid_stage")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["model_server"]["restarts"] == 1 and result["model_server"]["engine_starts"] == 2
    assert result["model_server"]["stopped_at"]
    caption = next(o for o in result["outcomes"] if o["stage"] == "caption")
    assert caption["status"] == "committed" and caption["videos_ok"] == 2 and caption["videos_failed"] == 0
    assert _error_reasons(ArtifactStore(str(night / "store")), "caption") == []
    assert len(lives(night / "server")) == 2
    _assert_no_process_left(night)  # the first life's engine core too, orphaned when it died
    ledger.survive("model_server_killed_mid_stage")


# -- stopping a server whose leader is gone -----------------------------------------------------
@pytest.mark.parametrize("guarded,victim", [(False, "leader"), (True, "leader"), (True, "server")],
                         ids=["server-leads-killed", "guard-leads-killed", "guarded-server-killed"])
def test_stop_ends_every_process_of_the_session(tmp_path: Path, guarded: bool, victim: str, ledger: Ledger) -> None:
    """The session's leader (the server, or ``glave run``'s guard in front of it) or the server
    under the guard is killed -9 while the engine-core child runs on; stopping the server ends
    that child, and only then does the record say it stopped."""
    script = interpreter(tmp_path / "server")
    config = make_config(tmp_path, engine={"backend": "vllm", "model": "tiny"},
                         model_server={"python": str(script), "device": "cpu", "startup_timeout_s": 30})
    store = ArtifactStore(config.store.root)
    record = ms.start_local(config, store, "r-orphan", owner_pid=os.getpid() if guarded else None)
    try:
        [(server, child)] = lives(tmp_path / "server")
        leader = record["pid"]
        assert (leader != server) == guarded
        assert ms.session_members(leader, record["leader_start"]) == sorted({leader, server, child})
        # A session number now held by a process that started at another time is not this server's.
        assert ms.session_members(leader, record["leader_start"] + 1) == []
        ledger.inject("model_server_leader_killed")
        os.kill(leader if victim == "leader" else server, signal.SIGKILL)
        _wait_until(lambda: not pid_alive(leader), 10, "the leader to go")
        assert pid_alive(child)  # the orphan a plain stop of the leader misses
        stopped = ms.stop_local(store, "r-orphan")
        assert not pid_alive(child) and not pid_alive(server)
        assert stopped is not None and stopped["stopped_at"]
        assert ms.session_members(leader) == []
        ledger.survive("model_server_leader_killed")
    finally:
        for pid in {p for life in lives(tmp_path / "server") for p in life}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
