"""Error types. A ``GlaveError`` is the user's to fix: the CLI prints it as one line, no traceback."""

from __future__ import annotations


class GlaveError(Exception):
    """A problem with input, config or state that the user can act on."""


class ConfigError(GlaveError):
    """The configuration is invalid; the message names the field and the problem."""


class StoreError(GlaveError):
    """An artifact could not be read or written, or a key is unsafe."""


class InfrastructureError(GlaveError):
    """The platform under the pipeline failed (store outage, lease conflict), not a video or the
    user's input. It ends the stage attempt in one line and is never recorded against a video."""

    exit_code = 3


class StoreUnavailable(InfrastructureError, StoreError):
    """The store kept failing after retries with backoff (or cannot be reached at all)."""


class LeaseHeld(InfrastructureError):
    """Another writer holds the lease of this run/stage/shard and did not let go in time."""


class LeaseLost(InfrastructureError):
    """This writer's lease expired or was taken over while it worked: it must not commit."""


class UpstreamNotReady(GlaveError):
    """A stage's inputs are not committed yet."""


class ShardFailed(GlaveError):
    """Too many videos of a shard failed: the shard is not committed."""


class VideoFailure(Exception):
    """One video cannot go through a stage. Recorded in the errors table; the shard goes on.

    ``reason`` is a stable, machine-readable code (e.g. ``corrupt``, ``too_long``); ``detail``
    is for humans.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
