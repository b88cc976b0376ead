"""Language/vision model layer: one request/response interface, engines chosen by config.

    engine = build_engine(config.engine, cache_dir=..., s3=...)
    responses = complete(engine, requests, output_models, structured_retries=...)

Engines: ``rules`` (embedded default, no model), ``vllm`` (in-process offline batches),
``openai`` (any OpenAI-compatible server). They are registered as backend kind ``engine``.
"""

from __future__ import annotations

from typing import Any

from .. import backends
from ..backends import load
from ..config import EngineConfig
from ..contract import Resources
from .structured import MALFORMED, complete, parse_answer, schema_for
from .types import Engine, EngineError, LLMRequest, LLMResponse

# Engines are registered in glave_tasks.backends as kind "engine" (rules, vllm, openai).


def build_engine(config: EngineConfig, **kwargs: Any) -> Engine:
    """The engine the config names (``cache_dir``/``s3`` are used by engines that load weights)."""
    engine: Engine = load("engine", config.backend)(config, **kwargs)
    return engine


def engine_ids(config: EngineConfig) -> dict[str, str]:
    """What identifies the engine's output, for stage fingerprints (declared by the engine)."""
    return backends.model_ids("engine", config.backend, config)


def engine_resources(config: EngineConfig) -> Resources:
    """What the engine needs in the stage's pod (declared by the engine)."""
    return backends.resources("engine", config.backend, config)


__all__ = ["Engine", "EngineError", "LLMRequest", "LLMResponse", "MALFORMED", "build_engine", "complete",
           "engine_ids", "engine_resources", "parse_answer", "schema_for"]
