"""Run the ``glave`` command, and SIGKILL it right after its first write under one stage's
prefix (data written, nothing committed): a crash in the middle of that stage, at a point the
test chooses instead of one a timer happens to hit.

    python -m tests.faults.kill_at STAGE -- glave-args...
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def main() -> int:
    stage, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: kill_at STAGE -- glave-args..."
    from glave_tasks import store as store_module
    from glave_tasks.cli import main as glave_main

    def armed(write: Any) -> Any:
        def wrapper(self: Any, *a: Any, **k: Any) -> Any:
            out = write(self, *a, **k)
            key = a[1] if write.__name__ == "put_file" else a[0]
            parts = key.split("/")
            if len(parts) > 3 and parts[0] == "runs" and parts[2] == stage and not key.endswith("_COMMIT.json"):
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        return wrapper

    store_module.ArtifactStore.write_bytes = armed(store_module.ArtifactStore.write_bytes)  # type: ignore[method-assign]
    store_module.ArtifactStore.put_file = armed(store_module.ArtifactStore.put_file)  # type: ignore[method-assign]
    return glave_main(args)


if __name__ == "__main__":
    sys.exit(main())
