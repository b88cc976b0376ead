"""Backend registries: config names a backend, this module finds its class.

Stages ask ``load("detector", cfg.track.detector.backend)`` instead of branching on names, so a
new backend is one registry line plus its module, and nothing imports a heavy library until the
backend is actually chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError

REGISTRY: dict[str, dict[str, str]] = {
    # kind -> backend name -> "module:attribute"
    "detector": {
        "classical": "glave_tasks.vision.classical_detector:ClassicalDetector",
        "ultralytics": "glave_tasks.vision.ultralytics_detector:UltralyticsDetector",
    },
    "segmenter": {
        "none": "glave_tasks.vision.box_tracker:BoxTracker",
        "sam2": "glave_tasks.vision.sam2_propagator:Sam2Propagator",
    },
    "similarity": {
        "histogram": "glave_tasks.media.similarity:HistogramSimilarity",
        "clip": "glave_tasks.media.similarity:ClipSimilarity",
    },
    "engine": {
        "rules": "glave_tasks.language.rules_engine:RulesEngine",
        "vllm": "glave_tasks.language.vllm_engine:VLLMEngine",
        "openai": "glave_tasks.language.openai_engine:OpenAIEngine",
    },
}


def register(kind: str, name: str, target: str) -> None:
    REGISTRY.setdefault(kind, {})[name] = target


def load(kind: str, name: str) -> Any:
    """The class (or factory) registered for a backend kind and name."""
    try:
        target = REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY.get(kind, {}))) or "none"
        raise ConfigError(f"unknown {kind} backend {name!r} (known: {known})") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
