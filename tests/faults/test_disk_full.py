"""A full local disk is reported as what it is: "disk full", the free bytes and the mount, at once
and in one line; never as an S3 retry deadline (a local store has none) and never retried."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

import glave_tasks.store as store_module
from glave_tasks.cli import main
from glave_tasks.errors import InfrastructureError
from glave_tasks.store import ArtifactStore

from .conftest import Ledger

pytestmark = pytest.mark.faults


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def no_space(path: Path, data: bytes) -> None:
        calls.append(1)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store_module, "_atomic_local_write", no_space)
    return calls


def _mount_of(path: Path) -> str:
    p = path.resolve()
    while not os.path.ismount(p):
        p = p.parent
    return str(p)


def test_a_full_local_disk_says_disk_full_and_never_mentions_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 ledger: Ledger) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    calls = _full_disk(monkeypatch)
    ledger.inject("enospc")
    with pytest.raises(InfrastructureError) as info:
        store.write_json("runs/r1/manifest.json", {"x": 1})
    message = str(info.value)
    assert message.startswith("disk full: write ") and "manifest.json" in message
    assert "bytes free on " + _mount_of(tmp_path) in message
    assert "s3" not in message.lower() and "retry_deadline" not in message
    assert len(calls) == 1  # not retried: waiting does not free a disk
    ledger.survive("enospc")


def test_glave_reports_a_full_disk_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.mp4").write_bytes(b"not really a video")
    _full_disk(monkeypatch)
    code = main(["discover", "--input", str(inbox), "--run-id", "r1", "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3 and len(lines) == 1 and lines[0].startswith("error: disk full: "), err
    assert "store.s3" not in err and "Traceback" not in err


def test_other_local_faults_do_not_cite_the_s3_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def io_error(path: Path, data: bytes) -> Any:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

    monkeypatch.setattr(store_module, "_atomic_local_write", io_error)
    with pytest.raises(InfrastructureError) as info:
        ArtifactStore(str(tmp_path / "store")).write_bytes("k/v.bin", b"x")
    assert "store.s3" not in str(info.value) and "Input/output error" in str(info.value)
