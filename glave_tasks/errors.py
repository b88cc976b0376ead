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


class CorruptArtifact(InfrastructureError):
    """A committed artifact does not match what its commit marker recorded (size or checksum), or a
    marker is torn. The upstream shard is marked corrupt and recomputed by a re-run; no video is
    blamed."""

    def __init__(self, message: str, *, stage: str | None = None, shard: int | None = None,
                 key: str | None = None) -> None:
        super().__init__(message)
        self.stage, self.shard, self.key = stage, shard, key


class ModelServerUnavailable(InfrastructureError):
    """The model server stayed unreachable past its deadline: the stage stops, no video is blamed."""


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM: eviction, preemption, a cancelled task).

    A ``BaseException`` like ``KeyboardInterrupt``, so no per-video guard records it against a
    video; the runner records ``terminated`` for the shard and the CLI exits 143."""

    exit_code = 143
