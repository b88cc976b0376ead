"""SIGTERM mid-stage (an evicted pod, a cancelled task) stops ``glave`` within seconds, as a
failure does: exit 143, the shard marked ``terminated`` and not committed, its leases released,
and no pool worker left running or writing. As PID 1 of a PID namespace (a container without an
init) the signal is not ignored either."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from glave_tasks import signals
from glave_tasks.cli import main
from glave_tasks.errors import Terminated
from glave_tasks.host import pid_alive
from glave_tasks.layout import RunLayout
from glave_tasks.lease import lease_key
from glave_tasks.store import ArtifactStore
from tests.support import ROOT, synthetic

from .conftest import Ledger

pytestmark = pytest.mark.faults

RUN = "night-term"
STOP_S = 10.0  # a stopped stage is gone well within this; a pod's grace period is 60 s
# Two workers whatever the stage declares, so the per-video work runs in a process pool.
ENV = {"GLAVE_CPUS": "2"}


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four distinct one-minute static videos: the smallest synthetic kind, long enough that the
    workers are still decoding (and writing frames) when the signal comes."""
    folder = tmp_path_factory.mktemp("term-inbox")
    for i in range(4):
        synthetic.static_video(folder / f"v{i}.mp4", seconds=60.0 + i)
    return folder


def _descendants(pid: int) -> dict[int, int]:
    """Every process below ``pid`` now (its forkserver and resource tracker, the pool workers
    below the forkserver), each with its parent."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: dict[int, int] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier and child not in found}
        found.update({child: parents[child] for child in frontier})
    return found


def _frames(store_root: Path) -> set[str]:
    """The frame images ingest wrote so far (any shard, any attempt)."""
    return {str(p) for p in (store_root / "runs" / RUN / "ingest").rglob("*.jpg")}


class Glave:
    """``glave`` in a subprocess (optionally behind a launcher such as ``unshare``), its stderr in
    a file: waiting for it then returns when that process ends, not when the last holder of its
    output pipes (a lingering worker) lets go."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict[str, str], prefix: tuple[str, ...] = ()) -> None:
        self.stderr = tmp_path / "glave.stderr"
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "glave_tasks.cli", *args], cwd=ROOT,
                                         env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                         stdout=subprocess.DEVNULL, stderr=err)
        self.below: dict[int, int] = {}  # every process seen below it, with its parent

    def err(self) -> str:
        return self.stderr.read_text()[-3000:]

    def wait_for_first_frame(self, store_root: Path) -> None:
        """Poll until ingest wrote its first frame: the stage is mid-way."""
        deadline = time.monotonic() + 120
        while not _frames(store_root):
            assert self.proc.poll() is None, f"ended before its first frame: {self.err()}"
            assert time.monotonic() < deadline, "no frame written in 120 s"
            self.below.update(_descendants(self.proc.pid))
            time.sleep(0.01)
        self.below.update(_descendants(self.proc.pid))

    def stopped(self, kill: int) -> int:
        """Exit status once it ended after the signal; SIGKILL to ``kill`` (and a failure) when it
        still runs after ``STOP_S``."""
        try:
            return self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            os.kill(kill, signal.SIGKILL)
            self.proc.wait(timeout=30)
            pytest.fail(f"still running {STOP_S:g} s after SIGTERM: the signal was ignored")


def _assert_nothing_left_running(glave: Glave, store_root: Path) -> None:
    """Right when the stage process ended: no pool worker is alive, and none writes a frame
    afterwards (a worker left behind notices its parent gone within a second, writing until
    then); its forkserver and resource tracker follow it at once."""
    frames = _frames(store_root)
    workers = [p for p, parent in glave.below.items() if parent != glave.proc.pid]
    assert workers, "no pool worker was started: the stage ran inline"
    time.sleep(0.2)  # a SIGKILL sent just before the parent ended takes a moment to land
    assert not [p for p in workers if pid_alive(p)], f"pool workers outlived the stage: {workers}"
    time.sleep(1.5)
    assert _frames(store_root) == frames, "frames written after the stage ended"
    assert not [p for p in glave.below if pid_alive(p)], "processes of the stage outlived it"


def _leases(store: ArtifactStore) -> dict[str, dict[str, object]]:
    """Every lease object of the run, by key (lock files left out)."""
    keys = store.list(f"{RunLayout(RUN).prefix}/_leases")
    return {k: store.read_json(k) for k in keys if k.endswith(".json") and not k.rsplit("/", 1)[-1].startswith(".")}


def _assert_terminated_not_committed(store: ArtifactStore, stage: str, shard: int) -> None:
    layout = RunLayout(RUN)
    assert not store.exists(layout.commit(stage, shard)), f"{stage} shard {shard} committed after SIGTERM"
    assert store.exists(layout.failed(stage, shard)), f"{stage} shard {shard}: no failure marker"
    assert store.read_json(layout.failed(stage, shard))["reason"] == "terminated"


def test_sigterm_mid_stage_exits_143_records_terminated_and_stops_the_workers(inbox: Path, tmp_path: Path,
                                                                              ledger: Ledger) -> None:
    store_root = tmp_path / "store"
    assert main(["discover", "--input", str(inbox), "--run-id", RUN, "--store", str(store_root), "--json"]) == 0
    glave = Glave(["stage", "ingest", "--run-id", RUN, "--shard", "0", "--store", str(store_root), "--json"],
                  tmp_path, ENV)
    glave.wait_for_first_frame(store_root)
    glave.proc.send_signal(signal.SIGTERM)
    ledger.inject("sigterm_mid_stage")
    code = glave.stopped(glave.proc.pid)
    assert code == 143, glave.err()
    _assert_nothing_left_running(glave, store_root)
    assert glave.err().strip().splitlines()[-1].startswith("error: terminated by SIGTERM"), glave.err()
    store = ArtifactStore(str(store_root))
    _assert_terminated_not_committed(store, "ingest", 0)
    assert _leases(store)[lease_key(RUN, "ingest", 0)]["released"] is True
    ledger.survive("sigterm_mid_stage")


def test_sigterm_mid_run_stops_every_shard_thread_and_the_run_pool(inbox: Path, tmp_path: Path,
                                                                   ledger: Ledger) -> None:
    """``glave run`` works ingest's shards side by side in threads, which get no signal: each must
    still end as terminated, and nothing later in the pipeline starts."""
    store_root = tmp_path / "store"
    glave = Glave(["run", "--input", str(inbox), "--run-id", RUN, "--store", str(store_root), "--json"],
                  tmp_path, {**ENV, "GLAVE__RUN__SHARD_SIZE": "1"})
    glave.wait_for_first_frame(store_root)
    glave.proc.send_signal(signal.SIGTERM)
    ledger.inject("sigterm_mid_run")
    code = glave.stopped(glave.proc.pid)
    assert code == 143, glave.err()
    _assert_nothing_left_running(glave, store_root)
    assert glave.err().strip().splitlines()[-1].startswith("error: terminated by SIGTERM"), glave.err()
    store = ArtifactStore(str(store_root))
    layout = RunLayout(RUN)
    uncommitted = [k for k in range(4) if not store.exists(layout.commit("ingest", k))]
    assert uncommitted, "every shard committed before the signal: nothing was stopped"
    for shard in uncommitted:
        _assert_terminated_not_committed(store, "ingest", shard)
    assert not store.list(f"runs/{RUN}/track"), "a later stage started after SIGTERM"
    leases = _leases(store)
    assert {lease_key(RUN, "ingest", k) for k in range(4)} <= set(leases)
    assert all(lease["released"] is True for lease in leases.values()), leases
    ledger.survive("sigterm_mid_run")


def test_handled_takes_sigterm_for_the_block_only_and_leaves_an_ignored_sighup_alone() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with signals.handled():
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_sigterm_raises_terminated_once_in_the_main_thread_and_in_threads_that_check() -> None:
    seen: list[BaseException] = []

    def shard_thread() -> None:
        try:
            signals.check()
        except Terminated as exc:
            seen.append(exc)

    with signals.handled():
        with pytest.raises(Terminated, match="terminated by SIGTERM") as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted: the handler raises where the main thread waits
        assert raised.value.exit_code == 143
        worker = threading.Thread(target=shard_thread)
        worker.start()
        worker.join()
        assert [str(e) for e in seen] == ["terminated by SIGTERM"]
        # A second signal does not interrupt the clean-up that the first one started.
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert signals.stopping.is_set()
    signals.check()  # the next command in this process starts afresh


def test_a_forked_child_dies_by_sigterm_despite_the_inherited_handler() -> None:
    """A child forked with the handler (not a pool worker: those start clean) must not raise
    Terminated where the parent would; it ends by the signal."""
    with signals.handled():
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os._exit(7)
        _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def _pid_namespaces_work() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


TINI = "/usr/bin/tini"  # where the images' ENTRYPOINT has it (Debian's tini package)


@pytest.mark.skipif(not _pid_namespaces_work(), reason="unshare --pid needs root (or user namespaces) on Linux")
@pytest.mark.parametrize("init", [
    pytest.param((), id="glave"),
    pytest.param((TINI, "--"), id="tini", marks=pytest.mark.skipif(not os.access(TINI, os.X_OK),
                                                                  reason=f"{TINI} not installed")),
])
def test_sigterm_to_glave_as_pid_1_is_not_ignored(init: tuple[str, ...], inbox: Path, tmp_path: Path,
                                                  ledger: Ledger) -> None:
    """PID 1 of a namespace gets no default action for SIGTERM: without a handler glave would run
    on until SIGKILL, as a pod without an init does. Under tini (the images' PID 1) the signal is
    handed on to glave, which still stops the same way."""
    kind = f"sigterm_to_pid_1_{'tini' if init else 'glave'}"
    store_root = tmp_path / "store"
    assert main(["discover", "--input", str(inbox), "--run-id", RUN, "--store", str(store_root), "--json"]) == 0
    glave = Glave(["stage", "ingest", "--run-id", RUN, "--shard", "0", "--store", str(store_root), "--json"],
                  tmp_path, ENV, prefix=("unshare", "--pid", "--fork", "--mount-proc", *init))
    glave.wait_for_first_frame(store_root)
    (pid,) = [p for p, parent in glave.below.items() if parent == glave.proc.pid]  # what unshare forked: PID 1
    with open(f"/proc/{pid}/status") as fh:
        nspid = next(line.split()[1:] for line in fh if line.startswith("NSpid:"))
    assert nspid[-1] == "1", f"not PID 1 in its namespace: {nspid}"
    os.kill(pid, signal.SIGTERM)
    ledger.inject(kind)
    code = glave.stopped(pid)
    # unshare (and tini) exit with the child's status; 0 is a stage that ignored SIGTERM and finished.
    assert code == 143, f"exit {code}: {glave.err()}"
    store = ArtifactStore(str(store_root))
    _assert_terminated_not_committed(store, "ingest", 0)
    assert _leases(store)[lease_key(RUN, "ingest", 0)]["released"] is True
    ledger.survive(kind)
