"""Make child Python processes apply the CPU torchvision fallback too."""

from __future__ import annotations

import os
from pathlib import Path

SITE_DIR = str(Path(__file__).with_name("site"))


def export_to_subprocesses(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Prepend the compat ``sitecustomize`` folder to PYTHONPATH (in place; returns the mapping)."""
    env = os.environ if environ is None else environ
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if SITE_DIR not in parts:
        env["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *parts])
    return env  # type: ignore[return-value]
