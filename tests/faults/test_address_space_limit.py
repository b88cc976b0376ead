"""Memory running out ends a stage as one infrastructure failure that names the limit: under an
address-space limit (``ulimit -v``) too small for the stage, ``glave stage`` refuses before any
native library can abort, crash or hang; and when memory runs out while a shard is being ingested
(a decoder or writer thread that cannot start, a MemoryError), the shard's failure marker says
so and no video is blamed."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.cli import main
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.support import ROOT, synthetic

from .conftest import Ledger

pytestmark = pytest.mark.faults

# Enough for Python and every import the CLI loads (about 340 MB at their peak), well under the
# 4 GiB ingest declares: between the two, native libraries used to fail in every way but a clean one.
LIMIT = 1024 * 2**20


@pytest.fixture
def discovered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.two_shot_video(inbox / "a.mp4")
    synthetic.static_video(inbox / "b.mp4", seconds=2.0)
    store = str(tmp_path / "store")
    assert main(["discover", "--input", str(inbox), "--run-id", "mem", "--store", store]) == 0
    capsys.readouterr()
    return store


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def test_stage_under_a_small_address_space_fails_in_one_clean_line(discovered: str, ledger: Ledger) -> None:
    ledger.inject("address_space_limit")
    proc = subprocess.run([sys.executable, "-m", "glave_tasks.cli", "stage", "ingest", "--run-id", "mem", "--shard", "0",
                           "--store", discovered], cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          preexec_fn=_limited, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 3, proc.stderr[-2000:]  # an infrastructure fault, not a signal (negative)
    assert len(lines) == 1 and lines[0].startswith("error: out of memory"), proc.stderr[-2000:]
    assert "ulimit -v" in lines[0] and "1.00 GiB" in lines[0] and "4Gi" in lines[0]
    # Nothing was started: no failure pinned on the shard, no lease left behind.
    store = ArtifactStore(discovered)
    assert not store.exists(RunLayout("mem").failed("ingest", 0))
    assert not [k for k in store.list(RunLayout("mem").prefix) if "/_leases/ingest/" in k]
    ledger.survive("address_space_limit")


class _NoThreads:
    """Stands in for the threading module in the scan: every new thread fails to start, as it
    does when the address space has no room left for its stack."""

    Event = threading.Event

    class Thread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")


def _stage(capsys: pytest.CaptureFixture[str], store: str) -> tuple[int, str]:
    code = main(["stage", "ingest", "--run-id", "mem", "--shard", "0", "--store", store, "--json"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("fault", ["thread_start", "memory_error"])
def test_memory_running_out_mid_ingest_is_recorded_for_the_shard_not_a_video(
        discovered: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, ledger: Ledger,
        fault: str) -> None:
    import glave_tasks.media.scan as scan

    monkeypatch.setenv("GLAVE_CPUS", "1")  # videos decode in this process, where the fault is injected
    if fault == "thread_start":
        monkeypatch.setattr(scan, "threading", _NoThreads)
    else:
        def no_memory(*args: Any, **kwargs: Any) -> Any:
            raise MemoryError()

        monkeypatch.setattr(scan, "analysis_bgr", no_memory)
    ledger.inject(fault)
    code, err = _stage(capsys, discovered)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 3 and "Traceback" not in err, err
    assert len(errors) == 1 and errors[0].startswith("error: out of memory in ingest of a.mp4"), err
    assert "address-space limit" in errors[0] or "no address-space limit" in errors[0]
    failed = ArtifactStore(discovered).read_json(RunLayout("mem").failed("ingest", 0))
    assert failed["reason"] == "infrastructure" and failed["detail"].startswith("OutOfMemory: out of memory")
    # No video was blamed: none is recorded as failed, and the next attempt with memory ingests both.
    assert "failed ingest" not in err
    monkeypatch.undo()
    monkeypatch.setenv("GLAVE_CPUS", "1")
    code, _ = _stage(capsys, discovered)
    assert code == 0
    marker = ArtifactStore(discovered).read_json(RunLayout("mem").commit("ingest", 0))
    assert marker["videos_failed"] == 0 and len(marker["videos_ok"]) == 2
    ledger.survive(fault)


def test_exhaustion_hidden_behind_its_clean_up_is_still_recognised() -> None:
    from glave_tasks.address_space import is_exhaustion

    try:
        try:
            raise RuntimeError("can't start new thread")
        except RuntimeError:
            raise RuntimeError("cannot join thread before it is started")  # noqa: B904 - the masking clean-up
    except RuntimeError as exc:
        masked = exc
    assert is_exhaustion(masked)
    assert not is_exhaustion(RuntimeError("cannot join thread before it is started"))
    assert not is_exhaustion(json.JSONDecodeError("x", "", 0))
