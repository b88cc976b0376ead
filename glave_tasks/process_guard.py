"""Run a command as a child and stop it when the process that owns it is gone.

    python -m glave_tasks.process_guard OWNER_PID -- COMMAND [ARG ...]

``glave run`` starts its model server through this guard: the server lives in a session of its
own (so it can be stopped as a group), which also means it would outlive a ``glave run`` killed
with SIGKILL, holding its port and accelerator memory with nobody left to stop it. The guard is
the group's leader; when the owner is gone it sends the group SIGTERM, and SIGKILL after a grace
period. Stopping the group from outside (SIGTERM to every member) makes the guard wait for the
command and exit with its status, so whoever waits for the guard's pid waits for the command.
Only the standard library and :mod:`glave_tasks.host` are imported: the guard costs no start-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .host import pid_alive

GRACE_S = 30.0


def guard(owner_pid: int, command: list[str], poll_s: float = 1.0, grace_s: float = GRACE_S) -> int:
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True  # the group got it too: wait for the command to finish its own shutdown

    signal.signal(signal.SIGTERM, on_term)
    child = subprocess.Popen(command)
    while True:
        try:
            return _exit_status(child.wait(timeout=poll_s))
        except subprocess.TimeoutExpired:
            pass
        if not stopping and not pid_alive(owner_pid):
            stopping = True
            os.killpg(os.getpgrp(), signal.SIGTERM)  # the command and everything it started
            try:
                return _exit_status(child.wait(timeout=grace_s))
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgrp(), signal.SIGKILL)


def _exit_status(returncode: int) -> int:
    """The command's status as a shell reports it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        print("usage: python -m glave_tasks.process_guard OWNER_PID -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    return guard(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
