"""Run code in the LLM environment (``.venv-llm``), as the production LLM image does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LLM_PYTHON = ROOT / ".venv-llm" / "bin" / "python"


def llm_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_LOGGING_LEVEL": "WARNING",
                "TOKENIZERS_PARALLELISM": "false", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"})
    return env


def run_llm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``.venv-llm/bin/python <args>`` from the repository root; raise with its output on failure."""
    proc = subprocess.run([str(LLM_PYTHON), *args], cwd=ROOT, env=llm_env(), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def build_tiny_model(out_dir: Path) -> Path:
    run_llm("-m", "tests.support.tiny_vlm", str(out_dir), timeout=300)
    return out_dir
