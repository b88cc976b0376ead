"""Running out of memory, above all under an address-space limit (``ulimit -v``, RLIMIT_AS), ends a
stage as one infrastructure failure that names the limit: never a video's fault, a bare abort or
a hang.

Two parts. Before a stage starts, :func:`preflight` refuses a limit below the memory the stage
declares: under it the native libraries fail in ways Python cannot catch (OpenBLAS giving up,
a C++ thread pool calling ``std::terminate``, Arrow's thread pool deadlocking, a segfault while
loading OpenCV), measured on ingest with two small videos anywhere from 350 MB to 1.2 GB. While
it runs, :func:`exhaustion_fails_the_stage` turns what Python does see (``MemoryError``, a thread
that cannot start, a shared library that cannot be mapped) into :class:`OutOfMemory`.
"""

from __future__ import annotations

import errno
import resource
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import InfrastructureError

# What the interpreter and the libraries say when the address space (or memory) is exhausted.
_EXHAUSTED_TEXT = ("can't start new thread", "failed to map segment", "cannot allocate memory",
                   "insufficient memory", "failed to allocate", "out of memory")


class OutOfMemory(InfrastructureError):
    """The process ran out of memory or address space: the platform's fault, not a video's."""


def limit_bytes() -> int | None:
    """The process's address-space limit (the soft one, which is enforced), or None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY or soft < 0 else int(soft)


def _size(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def describe_limit() -> str:
    limit = limit_bytes()
    if limit is None:
        return "no address-space limit is set, so the machine or its cgroup ran out"
    return f"the address-space limit (ulimit -v, RLIMIT_AS) is {_size(limit)}"


def is_exhaustion(exc: BaseException) -> bool:
    """Whether this error, or one it was raised while handling, says memory or address space ran
    out (a failed thread start is often masked by the clean-up that follows it)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, MemoryError):
            return True
        if isinstance(cur, OSError) and cur.errno == errno.ENOMEM:
            return True
        if isinstance(cur, (RuntimeError, ImportError, OSError)) or type(cur).__name__ == "error":  # cv2.error
            text = str(cur).lower()
            if any(t in text for t in _EXHAUSTED_TEXT):
                return True
        # Follow what the error was raised from or while handling, unless that was suppressed.
        cur = cur.__cause__ if cur.__cause__ is not None else (None if cur.__suppress_context__ else cur.__context__)
    return False


def out_of_memory(exc: BaseException, what: str) -> OutOfMemory:
    detail = " ".join(str(exc).split())[:200] or "no detail"
    return OutOfMemory(f"out of memory in {what}: {type(exc).__name__}: {detail}; {describe_limit()}")


@contextmanager
def exhaustion_fails_the_stage(what: str) -> Iterator[None]:
    """Inside: memory or address-space exhaustion becomes :class:`OutOfMemory` (an infrastructure
    failure: the runner records it for the shard, no video is blamed). Anything else passes."""
    try:
        yield
    except OutOfMemory:
        raise
    except Exception as exc:
        if is_exhaustion(exc):
            raise out_of_memory(exc, what) from None
        raise


def preflight(stage: str, declared_memory: str) -> None:
    """Refuse to start a stage whose address-space limit is below the memory it declares."""
    from .contract import quantity

    limit = limit_bytes()
    needed = quantity(declared_memory)
    if limit is not None and limit < needed:
        raise OutOfMemory(
            f"out of memory before {stage} started: it declares {declared_memory} of memory but {describe_limit()}; "
            f"below that native libraries abort, crash or hang instead of failing cleanly: raise the limit to at "
            f"least {declared_memory} or remove it")
