"""Batched calls with validated structured output and retries of malformed answers.

Stages (caption, bridge, QA) call :func:`complete` with a whole dependency level of requests.
Requests with an ``output_model`` get that model's JSON schema as a constraint; answers are
validated with pydantic, and only the malformed ones are re-sent (together, as one batch) with
a new attempt number, up to ``structured_retries`` times. What is still malformed comes back
with ``error="malformed_model_output"`` for the caller to record as a per-video failure.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from .types import Engine, LLMRequest, LLMResponse

log = logging.getLogger(__name__)

MALFORMED = "malformed_model_output"


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema an engine is constrained to for a pydantic output model."""
    return model.model_json_schema()


def parse_answer(text: str, model: type[BaseModel]) -> BaseModel:
    """Validate an answer. Tolerated: a markdown code fence around the JSON (hosted models add
    one) and raw control characters inside strings (grammar-constrained decoding lets them
    through; strict JSON forbids them)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else body[3:]
        body = body.rsplit("```", 1)[0]
    return model.model_validate(json.loads(body, strict=False))


def complete(
    engine: Engine,
    requests: Sequence[LLMRequest],
    output_models: Sequence[type[BaseModel] | None] | None = None,
    *,
    structured_retries: int = 2,
) -> list[LLMResponse]:
    """Run all requests through the engine in one batch; validate and retry structured answers."""
    models = list(output_models) if output_models is not None else [None] * len(requests)
    if len(models) != len(requests):
        raise ValueError("output_models must have one entry per request")
    reqs = [replace(r, json_schema=schema_for(m)) if m is not None and r.json_schema is None else r
            for r, m in zip(requests, models)]
    results: list[LLMResponse | None] = [None] * len(reqs)
    pending = list(range(len(reqs)))
    spent: dict[int, tuple[int, int, float]] = {}
    for attempt in range(structured_retries + 1):
        if not pending:
            break
        batch = [replace(reqs[i], attempt=attempt) for i in pending]
        started = time.perf_counter()
        responses = engine.generate(batch)
        log.info("engine %s: %d requests (attempt %d) in %.2f s", engine.generator, len(batch), attempt,
                 time.perf_counter() - started)
        retry: list[int] = []
        for i, resp in zip(pending, responses):
            p, c, lat = spent.get(i, (0, 0, 0.0))
            spent[i] = (p + resp.prompt_tokens, c + resp.completion_tokens, lat + resp.latency_s)
            resp.prompt_tokens, resp.completion_tokens, resp.latency_s = spent[i]
            resp.attempts = attempt + 1
            model = models[i]
            if resp.ok and model is not None:
                try:
                    resp.parsed = parse_answer(resp.text, model)
                except (ValidationError, json.JSONDecodeError, ValueError) as exc:
                    resp.error, resp.error_detail = MALFORMED, _short(exc, resp.text)
                    if attempt < structured_retries:
                        retry.append(i)
            results[i] = resp
        pending = retry
    return [r for r in results if r is not None]


def _short(exc: Exception, text: str) -> str:
    if isinstance(exc, ValidationError):
        first = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    else:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{first}; answer starts {text[:200]!r}"
