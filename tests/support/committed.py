"""Where a committed shard's artifacts live: in the attempt folder its commit marker names."""

from __future__ import annotations

import re
from typing import Any

from glave_tasks.layout import ATTEMPT_PREFIX, RunLayout
from glave_tasks.run import Run
from glave_tasks.store import ArtifactStore


class Committed:
    """Keys of a run's committed artifacts, for tests that read (or deliberately rewrite) them."""

    def __init__(self, store: ArtifactStore, run_id: str) -> None:
        self.run = Run(store, run_id)
        self.layout = RunLayout(run_id)

    def _attempt(self, stage: str, shard: int) -> str | None:
        marker = self.run.commit(stage, shard)
        assert marker is not None, f"{stage} shard {shard} is not committed"
        attempt = marker.get("attempt")
        return str(attempt) if attempt else None

    def table(self, stage: str, shard: int, name: str) -> str:
        return self.layout.table(stage, shard, name, self._attempt(stage, shard))

    def file(self, stage: str, shard: int, *parts: str) -> str:
        return self.layout.file(stage, shard, *parts, attempt=self._attempt(stage, shard))

    def prefix(self, stage: str, shard: int) -> str:
        return self.layout.attempt_prefix(stage, shard, self._attempt(stage, shard))


# An attempt's folder is named after its lease take, so keys differ between runs as timestamps
# do; snapshots compare them with the name folded away.
_ATTEMPT = re.compile(ATTEMPT_PREFIX + r"\d{6}-[0-9a-f]{8}")


def same_attempt(value: Any) -> Any:
    return _ATTEMPT.sub("attempt", value) if isinstance(value, str) else value
