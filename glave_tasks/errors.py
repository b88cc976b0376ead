"""Error types. A ``GlaveError`` is the user's to fix: the CLI prints it as one line, no traceback."""

from __future__ import annotations


class GlaveError(Exception):
    """A problem with input, config or state that the user can act on."""


class ConfigError(GlaveError):
    """The configuration is invalid; the message names the field and the problem."""


class StoreError(GlaveError):
    """An artifact could not be read or written, or a key is unsafe."""


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
