"""The ``glave`` command line: JSON status, one-line errors with a non-zero exit for user errors,
progress bars on long work, and a shard killed mid-way that a re-run completes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from glave_tasks.cli import main
from glave_tasks.config import S3Options, load_config
from glave_tasks.discover import discover
from glave_tasks.layout import RunLayout
from glave_tasks.run import Run
from glave_tasks.runner import run_stage
from glave_tasks.stages import build_stage
from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed, same_attempt

ROOT = Path(__file__).resolve().parents[1]


def glave(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small_inbox(tmp_path: Path) -> Path:
    d = tmp_path / "inbox"
    d.mkdir()
    synthetic.two_shot_video(d / "two_shot.mp4")
    synthetic.corrupt_file(d / "corrupt.mp4")
    return d


def test_discover_stage_and_status_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, small_inbox: Path) -> None:
    store = str(tmp_path / "store")
    code, out, _ = glave(capsys, "discover", "--input", str(small_inbox), "--run-id", "n1", "--store", store, "--json")
    assert code == 0 and json.loads(out)["num_videos"] == 2
    code, out, _ = glave(capsys, "stage", "ingest", "--run-id", "n1", "--shard", "0", "--store", store, "--json")
    outcome = json.loads(out)
    assert code == 0 and outcome["status"] == "committed" and outcome["videos_failed"] == 1
    code, out, _ = glave(capsys, "status", "--run-id", "n1", "--store", store, "--json")
    status = json.loads(out)
    assert code == 0 and status["num_videos"] == 2
    ingest = status["stages"]["ingest"]
    assert ingest["committed"] == 1 and ingest["failures"] == {"corrupt": 1}
    assert ingest["shards"][0]["state"] == "committed" and ingest["shards"][0]["videos_ok"] == 1
    assert all(s["shards"][0]["state"] == "missing" for name, s in status["stages"].items() if name != "ingest")
    code, out, _ = glave(capsys, "status", "--run-id", "n1", "--store", store)
    assert code == 0 and "ingest" in out and "failures: corrupt=1" in out
    # Same command again: nothing to do.
    code, out, _ = glave(capsys, "stage", "ingest", "--run-id", "n1", "--shard", "0", "--store", store, "--json")
    assert json.loads(out)["status"] == "skipped"


def test_run_goes_from_an_input_folder_to_committed_stages(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           small_inbox: Path) -> None:
    store = str(tmp_path / "store")
    code, out, _ = glave(capsys, "run", "--input", str(small_inbox), "--store", store, "--run-id", "n1",
                         "--stages", "ingest", "--json")
    result = json.loads(out)
    assert code == 0 and result["num_videos"] == 2 and not result["failed"]
    assert [(o["stage"], o["status"], o["videos_ok"]) for o in result["outcomes"]] == [("ingest", "committed", 1)]
    code, out, _ = glave(capsys, "status", "--run-id", "n1", "--store", store, "--json")
    assert json.loads(out)["stages"]["ingest"]["committed"] == 1


def test_long_work_shows_progress_bars(capsys: pytest.CaptureFixture[str], tmp_path: Path, small_inbox: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # One CPU: the videos are decoded in this process, where the per-video bar is drawn.
    monkeypatch.setenv("GLAVE_CPUS", "1")
    store = str(tmp_path / "store")
    glave(capsys, "discover", "--input", str(small_inbox), "--run-id", "n1", "--store", store)
    code, out, err = glave(capsys, "stage", "ingest", "--run-id", "n1", "--shard", "0", "--store", store)
    assert code == 0 and "ingest shard 0: committed" in out
    assert "ingest[0] videos:" in err and "/2 [" in err  # per shard, in videos
    assert "ingest[0] two_shot.mp4:" in err and "video-s" in err  # per video, in seconds decoded


def one_line_error(code: int, err: str, expected: int = 2) -> str:
    assert code == expected and "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    # Progress bars and per-video warnings may precede it; the error itself is the last, single line.
    assert len(errors) == 1 and lines[-1] == errors[0]
    return errors[0]


def test_user_errors_are_one_line_with_non_zero_exit(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      small_inbox: Path) -> None:
    store = str(tmp_path / "store")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  shard_size: 0\n")
    line = one_line_error(*glave(capsys, "status", "--run-id", "n1", "--config", str(bad))[::2])
    assert "run.shard_size" in line
    line = one_line_error(*glave(capsys, "status", "--run-id", "nope", "--store", store)[::2])
    assert "run 'nope' has no manifest" in line
    glave(capsys, "discover", "--input", str(small_inbox), "--run-id", "n1", "--store", store)
    line = one_line_error(*glave(capsys, "stage", "nope", "--run-id", "n1", "--shard", "0", "--store", store)[::2])
    assert "unknown stage 'nope'" in line and "ingest" in line
    line = one_line_error(*glave(capsys, "stage", "ingest", "--run-id", "n1", "--shard", "9", "--store", store)[::2])
    assert "no shard 9" in line
    line = one_line_error(*glave(capsys, "stage", "track", "--run-id", "n1", "--shard", "0", "--store", store)[::2])
    assert "ingest shard 0" in line and "not committed" in line
    line = one_line_error(*glave(capsys, "discover", "--input", str(tmp_path / "absent"), "--run-id", "n2",
                                 "--store", store)[::2])
    assert "input prefix not found" in line
    code, _, err = glave(capsys, "stage", "ingest", "--run-id", "n1")
    assert code == 2 and "Missing option '--shard'" in err


def test_a_failed_shard_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.corrupt_file(inbox / "a.mp4")
    synthetic.text_file_named_video(inbox / "b.mp4")
    store = str(tmp_path / "store")
    glave(capsys, "discover", "--input", str(inbox), "--run-id", "n1", "--store", store)
    # Exit 1: the work ran and did not succeed, as `glave run` says it (2 is for user errors).
    line = one_line_error(*glave(capsys, "stage", "ingest", "--run-id", "n1", "--shard", "0", "--store", store)[::2],
                          expected=1)
    assert "2/2 videos failed" in line and "max_failure_ratio" in line


# -- kill and re-run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("long_inbox")
    synthetic.two_shot_video(d / "a_two_shot.mp4")
    synthetic.long_video(d / "b_long.mp4", seconds=20.0)
    synthetic.long_video(d / "c_long.mp4", seconds=16.0, fps=20)
    synthetic.corrupt_file(d / "d_corrupt.mp4")
    return d


def snapshot(store: ArtifactStore, run_id: str) -> dict[str, Any]:
    """Everything a reader can see of the committed ingest shard (timestamps of the attempt aside)."""
    layout = RunLayout(run_id)
    out: dict[str, Any] = {}
    for table in ("probes", "keyframes", "dense_frames", "cuts", "errors"):
        rows = store.read_table(Committed(store, layout.run_id).table("ingest", 0, table)).to_pylist()
        for r in rows:
            r.pop("recorded_at", None)
            for k, v in r.items():  # frame keys name the attempt's folder, which differs per attempt
                r[k] = same_attempt(v)
        out[table] = rows
    prefix = Committed(store, layout.run_id).prefix("ingest", 0)
    # Keyed within the attempt's folder: each attempt has a folder of its own.
    out["files"] = {f[len(prefix):]: store.read_bytes(f) for f in store.list(prefix + "/files")}
    marker = Run(store, run_id).commit("ingest", 0)
    assert marker is not None
    out["marker"] = {k: marker[k] for k in ("fingerprint", "videos_ok", "videos_in", "failures", "counts")}
    return out


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_killed_shard_rerun_equals_an_uninterrupted_run(kind: str, long_inbox: Path, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    s3 = S3Options()
    if kind == "local":
        root = str(tmp_path / "store")
    else:
        s3 = S3Options(endpoint_url=request.getfixturevalue("s3_endpoint"))
        root = f"s3://{request.getfixturevalue('s3_bucket')}/glave"
    cfg_file = tmp_path / "glave.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "store": {"root": root, "local_cache": str(tmp_path / "cache"), "s3": s3.model_dump()},
        "run": {"shard_size": 10},
    }))
    config = load_config(cfg_file, environ={})
    store = ArtifactStore(root, s3)
    discover(store, config, str(long_inbox), "n1")

    cmd = [sys.executable, "-m", "glave_tasks.cli", "stage", "ingest", "--run-id", "n1", "--shard", "0",
           "--config", str(cfg_file), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    files_prefix = RunLayout("n1").shard_prefix("ingest", 0)  # the attempt's folder is not committed yet
    deadline = time.time() + 120
    # Kill once frames of the long video are being written: mid-shard, before the commit.
    while time.time() < deadline and proc.poll() is None:
        if any("/files/" in k and k.endswith(".jpg") for k in store.list(files_prefix)) and \
                len(store.list(files_prefix)) > 30:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the stage finished before it could be killed: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert Run(store, "n1").commit("ingest", 0) is None
    assert store.list(files_prefix)  # a partial attempt was left behind

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "committed"

    # The same shard, uninterrupted, in a fresh store.
    clean_root = str(tmp_path / "clean")
    clean = ArtifactStore(clean_root)
    discover(clean, config, str(long_inbox), "n1")
    run_stage(build_stage("ingest", config), clean, "n1", 0, show_progress=False)
    assert snapshot(store, "n1") == snapshot(clean, "n1")
