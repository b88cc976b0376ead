"""Facts about processes on this host (leases and the local model server ask them)."""

from __future__ import annotations

import os


def pid_alive(pid: object) -> bool:
    """A process with this pid exists on this host (a non-integer or non-positive pid: no)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
