"""The rules engine: answers requests from the facts they carry, without a model.

It is the embedded default (``engine.backend: rules``): captions written from the tracking and
ingest facts (objects, IDs, positions, motion between keyframes, shot cuts). Every response is
marked ``generator="rules"``. Stages register one handler per task name; a handler gets the
request's ``context`` and returns text (or JSON text for structured tasks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...backends import Backend
from ...config import EngineConfig
from ...contract import Resources
from ..types import LLMRequest, LLMResponse

RuleHandler = Callable[[dict[str, Any]], str]
RULES: dict[str, RuleHandler] = {}
RULES_VERSION = "rules-1"


def rule(task: str) -> Callable[[RuleHandler], RuleHandler]:
    """Register the rules answer to a task (decorator)."""

    def deco(fn: RuleHandler) -> RuleHandler:
        RULES[task] = fn
        return fn

    return deco


class RulesEngine(Backend):
    generator = "rules"
    model_id: str | None = RULES_VERSION
    model_revision: str | None = None

    @classmethod
    def model_ids(cls, config: EngineConfig) -> dict[str, str]:
        return {"engine": "rules", "rules": RULES_VERSION}

    @classmethod
    def resources(cls, config: EngineConfig) -> Resources:
        return Resources(cpu="1", memory="1Gi")

    def __init__(self, config: EngineConfig | None = None, **_: Any) -> None:
        self.config = config

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        out = []
        for req in requests:
            started = time.perf_counter()
            handler = RULES.get(req.task)
            if handler is None:
                out.append(LLMResponse(req, "", self.generator, self.model_id, None, error="no_rule",
                                       error_detail=f"the rules engine has no handler for task {req.task!r}"))
                continue
            text = handler(req.context)
            out.append(LLMResponse(req, text, self.generator, self.model_id, None,
                                   latency_s=time.perf_counter() - started, finish_reason="stop"))
        return out

    def close(self) -> None:
        pass
