"""The process guard runs a command for an owner process and stops it when the owner is gone; a
stop from outside (SIGTERM to the group) waits for the command and hands back its status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from glave_tasks.host import pid_alive


def _guarded(owner: int, command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "glave_tasks.process_guard", str(owner), "--", *command],
                            start_new_session=True)


def _wait_for(path: Path, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def _gone_within(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_the_command_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "600"])
    pid_file = tmp_path / "child.pid"
    guard = _guarded(owner.pid, ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 600"])
    child = _wait_for(pid_file)
    owner.kill()
    owner.wait()
    assert _gone_within(child, 10), "the command outlived its owner"
    assert guard.wait(timeout=10) == 128 + signal.SIGTERM  # the command's own status, as a shell says it


def test_a_stop_from_outside_waits_for_the_command_and_returns_its_status(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    ready = tmp_path / "ready"
    script.write_text(textwrap.dedent(f"""
        import signal, sys, time
        def stop(signum, frame):
            time.sleep(1.0)  # a shutdown that takes a moment
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        open({str(ready)!r}, "w").write("1")
        time.sleep(600)
    """))
    guard = _guarded(os.getpid(), [sys.executable, str(script)])
    _wait_for(ready)
    started = time.monotonic()
    os.killpg(guard.pid, signal.SIGTERM)  # what stopping the run's server does
    assert guard.wait(timeout=10) == 7
    assert time.monotonic() - started >= 0.9  # it waited for the command's own shutdown


def test_a_malformed_command_line_is_refused() -> None:
    result = subprocess.run([sys.executable, "-m", "glave_tasks.process_guard", "not-a-pid", "sleep", "1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage" in result.stderr
