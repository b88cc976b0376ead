"""`glave stage` and `glave run` exit alike for the same shard failure: 1 when the work ran and too
many videos failed (the failure ratio), 2 for a user error, 3 for an infrastructure fault."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import glave_tasks.store as store_module
from glave_tasks.cli import main
from tests.support import synthetic

from .conftest import Ledger

pytestmark = pytest.mark.faults


def glave(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _errors(err: str) -> list[str]:
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error: ")]


def test_a_failed_shard_exits_1_from_stage_as_from_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        ledger: Ledger) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.corrupt_file(inbox / "a.mp4")
    synthetic.text_file_named_video(inbox / "b.mp4")
    ledger.inject("failed_shard")
    run_code, run_err = glave(capsys, "run", "--input", str(inbox), "--store", str(tmp_path / "run-store"),
                              "--run-id", "x1", "--stages", "ingest")
    store = str(tmp_path / "stage-store")
    assert glave(capsys, "discover", "--input", str(inbox), "--run-id", "x1", "--store", store)[0] == 0
    stage_code, stage_err = glave(capsys, "stage", "ingest", "--run-id", "x1", "--shard", "0", "--store", store)
    assert run_code == stage_code == 1, (run_err, stage_err)
    errors = _errors(stage_err)
    assert len(errors) == 1 and "2/2 videos failed" in errors[0] and "Traceback" not in stage_err
    ledger.survive("failed_shard")


def test_user_errors_still_exit_2_and_infrastructure_3(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "store")
    code, err = glave(capsys, "stage", "ingest", "--run-id", "never-discovered", "--shard", "0", "--store", store)
    assert code == 2 and len(_errors(err)) == 1
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=2.0)
    assert glave(capsys, "discover", "--input", str(inbox), "--run-id", "x2", "--store", store)[0] == 0

    def no_space(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setenv("GLAVE_CPUS", "1")
    monkeypatch.setattr(store_module, "_atomic_local_write", no_space)
    code, err = glave(capsys, "stage", "ingest", "--run-id", "x2", "--shard", "0", "--store", store)
    assert code == 3 and _errors(err)[-1].startswith("error: disk full"), err
