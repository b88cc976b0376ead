"""Facts about processes on this host (leases and the local model server ask them)."""

from __future__ import annotations

import os


def pid_alive(pid: object) -> bool:
    """A process with this pid is running on this host (a non-integer or non-positive pid: no).

    A zombie (killed, not yet reaped by its parent) is not running: a pool worker watching a
    SIGKILLed stage process must see it gone even while whoever started it has not reaped it.
    """
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux) or it just ended: the signal check stands
    return state not in ("Z", "X")
