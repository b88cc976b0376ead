"""A stand-in for ``vllm serve`` as a process of its own, for the dead-server scenarios.

``interpreter(folder, ...)`` writes a script that takes the place of the LLM environment's Python
(``model_server.python``): the run launches it as ``SCRIPT -m vllm.entrypoints.openai.api_server
--served-model-name M --port P ...`` and it runs this module with those arguments. Each start
(a "life") appends ``<server pid> <child pid>`` to ``<folder>/lives``, spawns one child in its
session that stands in for vLLM's engine core (it sleeps until killed), and answers ``/health``,
``/v1/models`` and every chat request with a short caption. In its first ``dying_lives`` lives it
SIGKILLs itself at its ``die_at``-th chat request, the child left running as vLLM's would be.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.support import ROOT

from .servers import ModelServer, Reply

ENGINE_CORE = "import time\nwhile True:\n    time.sleep(60)\n"


def interpreter(folder: Path, *, die_at: int = 0, dying_lives: int = 0) -> Path:
    """The stand-in's launcher script (its state goes to ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "server-python"
    script.write_text(
        "#!/bin/sh\n"
        f"cd {ROOT}\n"
        f"export PYTHONPATH={ROOT} STANDIN_STATE={folder} STANDIN_DIE_AT={die_at} STANDIN_DYING_LIVES={dying_lives}\n"
        f'exec {sys.executable} -m tests.faults.server_process "$@"\n')
    script.chmod(0o755)
    return script


def lives(folder: Path) -> list[tuple[int, int]]:
    """(server pid, engine-core child pid) of every start so far."""
    path = folder / "lives"
    if not path.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines() if line.strip())]


def _flag(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def main(argv: list[str]) -> None:
    state = Path(os.environ["STANDIN_STATE"])
    die_at, dying_lives = int(os.environ["STANDIN_DIE_AT"]), int(os.environ["STANDIN_DYING_LIVES"])
    life = len(lives(state)) + 1
    child = subprocess.Popen([sys.executable, "-c", ENGINE_CORE, "VLLM::EngineCore"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(state / "lives", "a") as out:
        out.write(f"{os.getpid()} {child.pid}\n")

    def script(body: dict[str, Any], n: int) -> Reply:
        if life <= dying_lives and n == die_at:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-stage, mid-batch, as an OOM kill would
        return Reply.ok(f"A grey frame, seen in answer {n} of life {life}.")

    ModelServer(script, port=int(_flag(argv, "--port", "0")), model=_flag(argv, "--served-model-name", "served-model"))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # as vLLM's API server: SIGTERM ends it at once
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
