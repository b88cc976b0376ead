"""The stages, in the order of the method. Read the modules in this order to follow one video
from raw file to published record: ingest -> track -> caption -> bridge -> qa -> validate."""

from __future__ import annotations

import importlib

from ..config import GlaveConfig
from ..errors import GlaveError
from ..contract import Stage

# name -> "module:Class"; modules are imported only when a stage is used (heavy libraries).
STAGES: dict[str, str] = {
    "ingest": "glave_tasks.stages.ingest:IngestStage",
    "track": "glave_tasks.stages.track:TrackStage",
    "caption": "glave_tasks.stages.caption:CaptionStage",
    "bridge": "glave_tasks.stages.bridge:BridgeStage",
    "qa": "glave_tasks.stages.qa:QAStage",
    "validate": "glave_tasks.stages.validate:ValidateStage",
}

PIPELINE: list[str] = ["ingest", "track", "caption", "bridge", "qa", "validate"]


def available() -> list[str]:
    """Pipeline stages that exist, in order."""
    return [s for s in PIPELINE if s in STAGES]


def stage_class(name: str) -> type[Stage]:
    if name not in STAGES:
        raise GlaveError(f"unknown stage {name!r}; stages: {', '.join(available())}")
    module, cls = STAGES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_stage(name: str, config: GlaveConfig) -> Stage:
    return stage_class(name)(config)
