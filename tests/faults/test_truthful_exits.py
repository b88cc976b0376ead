"""Failure never looks like success: a failed shard makes ``glave run`` exit non-zero with a
summary; ``glave publish`` refuses a run with failed or missing shards, or no videos, and says
why; arguments are validated like config; no traceback without ``-v``; third-party banners stay
off stdout and nothing is written to $HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glave_tasks.cli import main
from tests.support import ROOT, synthetic

from .conftest import Ledger


def glave(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_failed_shard_fails_the_run_and_publish_refuses(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         ledger: Ledger) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.corrupt_file(inbox / "a.mp4")
    synthetic.text_file_named_video(inbox / "b.mp4")
    store = str(tmp_path / "store")
    ledger.inject("all_videos_bad")
    code, out, err = glave(capsys, "run", "--input", str(inbox), "--store", store, "--run-id", "n1", "--json")
    assert code == 1, err
    result = json.loads(out)  # stdout stays pure JSON
    assert result["failed"] and result["failed"][0]["stage"] == "ingest"
    summary = [line for line in err.splitlines() if line.startswith("error: ")]
    assert summary == [summary[-1]] and "did not complete" in summary[0] and "ingest[0]" in summary[0]
    assert "Traceback" not in err

    code, out, err = glave(capsys, "publish", "--run-id", "n1", "--store", store)
    assert code == 2 and "Traceback" not in err
    assert "not published" in err and "ingest[0] failed (failure_ratio)" in err and "track[0] missing" in err
    assert "--allow-partial" in err
    # Told to publish partial results, it still refuses an empty dataset, and says so.
    code, out, err = glave(capsys, "publish", "--run-id", "n1", "--store", store, "--allow-partial")
    assert code == 2 and "no video completed the pipeline (2 in the run)" in err
    assert not (tmp_path / "store" / "published").exists()
    ledger.survive("all_videos_bad")


@pytest.mark.parametrize("args, message", [
    (["discover", "--shard-size", "-3"], "Invalid value for '--shard-size'"),
    (["discover", "--shard-size", "0"], "Invalid value for '--shard-size'"),
    (["discover", "--max-videos", "-1"], "Invalid value for '--max-videos'"),
    (["discover", "--max-videos", "0"], "Invalid value for '--max-videos'"),
    (["discover", "--run-id", ""], "run id is empty"),
    (["discover", "--run-id", "x'q"], "invalid run id \"x'q\""),
    (["run", "--run-id", ""], "run id is empty"),
    (["stage", "ingest", "--shard", "-1"], "Invalid value for '--shard'"),
])
def test_arguments_are_validated_like_config(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str],
                                             message: str) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    full = [args[0], *args[1:]]
    if "--run-id" not in full:
        full += ["--run-id", "n1"]
    if args[0] in ("discover", "run"):
        full += ["--input", str(inbox)]
    code, out, err = glave(capsys, *full, "--store", str(tmp_path / "store"))
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "store" / "runs").exists()  # nothing planned that a later run would keep


def test_unexpected_errors_are_one_line_without_verbose(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from glave_tasks import run as run_module

    def broken(self: object, *a: object, **k: object) -> None:
        raise ZeroDivisionError("a bug somewhere")

    monkeypatch.setattr(run_module.Run, "status", broken)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    store = str(tmp_path / "store")
    glave(capsys, "discover", "--input", str(inbox), "--run-id", "n1", "--store", store)
    code, out, err = glave(capsys, "status", "--run-id", "n1", "--store", store)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == ["error: internal error: ZeroDivisionError: a bug somewhere "
                                        "(run with -v for the traceback)"]
    with pytest.raises(ZeroDivisionError):
        main(["-v", "status", "--run-id", "n1", "--store", store])


def test_banners_stay_off_stdout_and_home_is_untouched(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=2.0)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR", "YOLO_VERBOSE")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), GLAVE_STATE_DIR=str(tmp_path / "state"))
    # Track runs the classical detector with Ultralytics' tracker: its first import prints a
    # settings banner and would create ~/.config/Ultralytics.
    done = subprocess.run([sys.executable, "-m", "glave_tasks.cli", "run", "--input", str(inbox), "--run-id", "n1",
                           "--store", str(tmp_path / "store"), "--stages", "ingest,track", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert [o["stage"] for o in result["outcomes"]] == ["ingest", "track"]
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
    assert (tmp_path / "state" / "ultralytics").is_dir()
