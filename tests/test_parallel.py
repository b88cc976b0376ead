"""Per-video work over a process pool: results and failures in the shard's order whatever order
the workers finish in, metrics summed, each worker's stage set up once, one worker runs inline."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from glave_tasks.contract import Resources, ShardContext, Stage
from glave_tasks.errors import VideoFailure
from glave_tasks.parallel import cpu_workers, map_videos, run_in_pool, run_pool, runs_shards_side_by_side
from glave_tasks.store import ArtifactStore
from tests.support import make_config


class SleepyStage(Stage):
    name = "sleepy"

    def resources(self) -> Resources:
        return Resources(cpu="2")

    def setup(self) -> None:
        self.pid = os.getpid()

    def process(self, ctx: ShardContext) -> None:  # pragma: no cover - driven through map_videos
        pass

    def whole_shard(self, n: int) -> dict[str, Any]:
        if n < 0:
            raise ValueError("negative on purpose")
        import sys

        return {"pid": os.getpid(), "square": n * n, "warm": "json.tool" in sys.modules}

    def work(self, ctx: Any, vid: str, delay: float) -> dict[str, Any]:
        time.sleep(delay)  # later items finish first
        if vid == "bad":
            raise VideoFailure("bad_video", "rejected on purpose")
        key = ctx.put_bytes(vid.encode(), vid, "blob.txt")
        ctx.add_metric("worked", 1)
        return {"vid": vid, "pid": os.getpid(), "key": key}


def _ctx(tmp_path: Path) -> tuple[ShardContext, SleepyStage]:
    config = make_config(tmp_path)
    store = ArtifactStore(config.store.root)
    return ShardContext(store, config, "r-par", 0, "sleepy", [], {}, show_progress=False), SleepyStage(config)


def test_two_workers_keep_the_shard_order_and_record_failures(tmp_path: Path) -> None:
    ctx, stage = _ctx(tmp_path)
    items = [(v, (v, d)) for v, d in (("a", 0.6), ("bad", 0.3), ("c", 0.0), ("d", 0.0))]
    results = map_videos(ctx, stage, "work", items, workers=2)
    assert [r and r["vid"] for r in results] == ["a", None, "c", "d"]
    assert [(e["video_id"], e["reason"]) for e in ctx.errors] == [("bad", "bad_video")]
    assert ctx.metrics["worked"] == 3
    assert len({r["pid"] for r in results if r}) == 2 and os.getpid() not in {r["pid"] for r in results if r}
    assert ctx.store.read_bytes(results[3]["key"]) == b"d"


def test_one_worker_runs_inline(tmp_path: Path) -> None:
    ctx, stage = _ctx(tmp_path)
    results = map_videos(ctx, stage, "work", [("a", ("a", 0.0)), ("bad", ("bad", 0.0))], workers=1)
    assert results[0]["pid"] == os.getpid() and results[1] is None
    assert ctx.failed_ids == {"bad"}


def test_a_run_pool_takes_one_video_shards_and_outlives_each_call(tmp_path: Path) -> None:
    ctx, stage = _ctx(tmp_path)
    with run_pool(2) as pool:
        first = map_videos(ctx, stage, "work", [("a", ("a", 0.0))])
        second = map_videos(ctx, stage, "work", [("b", ("b", 0.0)), ("bad", ("bad", 0.0))])
        workers = set(pool.get()._processes or ())
    # One video still goes to the pool (other shards may be feeding it), and the same workers
    # serve every call: each built its stage once.
    assert first[0]["pid"] != os.getpid() and second[0]["pid"] != os.getpid()
    assert {r["pid"] for r in first + second if r} <= workers
    assert second[1] is None and ctx.failed_ids == {"bad"}


def test_shards_run_side_by_side_only_for_pooled_stages_inside_a_run_pool(tmp_path: Path) -> None:
    ctx, stage = _ctx(tmp_path)
    assert not runs_shards_side_by_side(stage)  # no run pool: a pod, one shard per process
    with run_pool(2):
        assert not runs_shards_side_by_side(stage)  # its shard-level work is not declared light
        type(stage).work_in_pool = True
        try:
            assert runs_shards_side_by_side(stage)
        finally:
            del type(stage).work_in_pool
    with run_pool(1):
        type(stage).work_in_pool = True
        try:
            assert not runs_shards_side_by_side(stage)  # one core: nothing to gain
        finally:
            del type(stage).work_in_pool


def test_shard_level_work_runs_in_the_run_pool_and_its_errors_come_back(tmp_path: Path) -> None:
    import pytest

    _, stage = _ctx(tmp_path)
    assert run_in_pool(stage, "whole_shard", 3)["pid"] == os.getpid()  # no run pool: right here
    with run_pool(2) as pool:
        pool.warm(["json.tool"])  # imported by idle workers ahead of the stage that needs it
        time.sleep(1.0)
        out = run_in_pool(stage, "whole_shard", 4)
        assert out["pid"] != os.getpid() and out["square"] == 16 and out["warm"]
        with pytest.raises(ValueError, match="negative on purpose"):
            run_in_pool(stage, "whole_shard", -1)


def test_workers_follow_the_pod_request_and_the_cores(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("GLAVE_CPUS", raising=False)
    assert cpu_workers(Resources(cpu="500m")) == 1
    assert cpu_workers(Resources(cpu="64")) == cores
    assert cpu_workers(Resources(cpu="64", gpus=1)) == 1
    monkeypatch.setenv("GLAVE_CPUS", "1")
    assert cpu_workers(Resources(cpu="64")) == 1


KILLED_PARENT = """
import time
from glave_tasks.parallel import video_pool

pool = video_pool(2)
busy = [pool.submit(time.sleep, 600) for _ in range(2)]  # both workers started and working
time.sleep(2)
for pid in pool._processes:
    print(pid, flush=True)
time.sleep(600)
"""


def test_pool_workers_end_when_the_stage_process_is_killed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from glave_tasks.host import pid_alive

    proc = subprocess.Popen([sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(proc.stdout.readline()) for _ in range(2)]
    assert all(pid_alive(w) for w in workers)
    os.kill(proc.pid, signal.SIGKILL)  # what an OOM kill or kill -9 of a stage does
    proc.wait()
    deadline = time.monotonic() + 20
    while any(pid_alive(w) and not _zombie(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if pid_alive(w) and not _zombie(w)], "pool workers outlived their stage"


IDLE_RUN_POOL = """
import os, time
from glave_tasks.parallel import run_pool

with run_pool(2) as pool:
    done = [pool.get().submit(os.getpid) for _ in range(4)]
    [f.result() for f in done]  # the run's workers are idle between stages
    for pid in pool.get()._processes:
        print(pid, flush=True)
    time.sleep(600)
"""


def test_idle_run_pool_workers_end_when_the_run_is_killed_before_anyone_reaps_it() -> None:
    import signal
    import subprocess
    import sys

    from glave_tasks.host import pid_alive

    proc = subprocess.Popen([sys.executable, "-c", IDLE_RUN_POOL], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(proc.stdout.readline()) for _ in range(2)]
    os.kill(proc.pid, signal.SIGKILL)
    # Not reaped yet: the killed run is a zombie, which is not alive. A caller reading the run's
    # output to its end (subprocess.run) would otherwise wait on the workers for good.
    deadline = time.monotonic() + 20
    while (pid_alive(proc.pid) or any(pid_alive(w) for w in workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(proc.pid)
    assert not [w for w in workers if pid_alive(w)], "idle run pool workers outlived their run"
    assert proc.stdout.read() == ""  # every holder of the output pipe is gone
    proc.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True
