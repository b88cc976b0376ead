"""Versioned prompt templates (``glave_tasks/prompts/<name>.j2``).

Each template starts with ``{#- version: N -#}``; the version string ``<name>@<N>`` goes into
every row's provenance and into the stage fingerprint, so editing a prompt (and bumping its
version) re-runs exactly the stages that use it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
_VERSION = re.compile(r"^\{#-?\s*version:\s*([\w.\-]+)\s*-?#\}")


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(PROMPT_DIR)), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


@cache
def prompt_version(name: str) -> str:
    path = PROMPT_DIR / f"{name}.j2"
    if not path.exists():
        raise FileNotFoundError(f"no prompt template {path}")
    match = _VERSION.match(path.read_text())
    if not match:
        raise ValueError(f"prompt template {path} has no '{{#- version: N -#}}' header")
    return f"{name}@{match.group(1)}"


def render(name: str, **context: Any) -> str:
    return _env().get_template(f"{name}.j2").render(**context).strip()


def versions(*names: str) -> dict[str, str]:
    return {n: prompt_version(n) for n in names}
