"""SIGTERM (and SIGHUP) as an exception: the process stops the way a failure does, not mid-write.

Kubernetes evicts a pod with SIGTERM and kills it with SIGKILL when the grace period is over; a
local run is stopped the same way by a scheduler or ``kill``. With :func:`handled` around a
command, the first such signal raises :class:`~glave_tasks.errors.Terminated` in the main thread
(Python runs signal handlers only there), wherever it waits: a stage's ``future.result()``, the
end of ``glave run``'s shard threads, a lease poll. ``Terminated`` is a ``BaseException``, so per-video
guards let it through; the runner records the shard as terminated, leases are released on the way
out and the CLI exits ``128 + signal`` (143 for SIGTERM).

Other threads never receive signals. They see :data:`stopping` set and call :func:`check`, which
raises ``Terminated`` in them too; what they wait on (a process pool) is stopped by whoever owns
it (:mod:`glave_tasks.parallel`), so no thread waits for work that nobody will finish.

A handler also matters for a process that is PID 1 in its namespace (a container without an
init): the kernel gives PID 1 no default action for SIGTERM, so without one the signal is ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .errors import Terminated

SIGNALS = (signal.SIGTERM, signal.SIGHUP)

# Set once the process was asked to stop; threads and loops that the signal cannot reach poll it.
stopping = threading.Event()
_reason: list[tuple[str, int]] = []  # (message, exit code) of the signal that set ``stopping``
_owner_pid: int | None = None  # the process that installed the handler (a forked child is not it)


def terminated() -> Terminated:
    """The exception that ends this process's work, as the first signal described it."""
    message, code = _reason[0] if _reason else ("terminated", Terminated.exit_code)
    exc = Terminated(message)
    exc.exit_code = code
    return exc


def check() -> None:
    """Raise :class:`Terminated` in the calling thread once the process is stopping."""
    if stopping.is_set():
        raise terminated()


def stop(message: str = "terminated", exit_code: int = Terminated.exit_code) -> None:
    """Mark the process as stopping (the first reason given is kept)."""
    if not _reason:
        _reason.append((message, exit_code))
    stopping.set()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner_pid:
        # A child forked with this handler (not a forkserver's or spawn's worker, which start
        # clean): it dies by the signal as it would have without us.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if stopping.is_set():
        # Already stopping: a second signal must not cut the clean-up short (failure marker,
        # lease release). SIGKILL still ends the process at once.
        return
    stop(f"terminated by {signal.Signals(signum).name}", 128 + signum)
    raise terminated()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Only signals left at their default action are taken over (``nohup`` ignores SIGHUP and stays
    in force); the previous handlers come back afterwards and :data:`stopping` is cleared, so
    calling a command in-process (tests, the warm launcher's children) leaves the caller as it
    was. Outside the main thread (where Python cannot install handlers) this does nothing."""
    global _owner_pid
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping.clear()
    _reason.clear()
    previous: dict[signal.Signals, Any] = {}
    _owner_pid = os.getpid()
    try:
        for sig in SIGNALS:
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _on_signal)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopping.clear()
        _reason.clear()


def default_in_child() -> None:
    """In a worker process: SIGTERM and SIGHUP end it at once (the default action), whatever
    handler the process that started it had."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
