"""Batched calls with validated structured output and retries of malformed answers.

Stages (caption, bridge, QA) call :func:`complete` with a whole dependency level of requests.
Requests with an ``output_model`` get that model's JSON schema as a constraint; answers are
validated with pydantic. Answers that cannot be used (malformed, empty, or cut off by the token
budget) are re-sent together with a new attempt number; what stays unusable comes back with a
reason code (``malformed_model_output``, ``empty_model_output``, ``model_output_truncated``) for
the caller to record as a per-video failure. Nothing cut off or empty is ever stored as an answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from .types import EMPTY_OUTPUT, TRUNCATED_OUTPUT, Engine, LLMRequest, LLMResponse

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
    length_retry_factor: float = 2.0,
    max_answer_tokens: int | None = None,
) -> list[LLMResponse]:
    """Run all requests through the engine in one batch, then re-send (together) the answers
    that cannot be used:

    - empty text, or a structured answer that does not validate: up to ``structured_retries``
      more times, then ``empty_model_output`` / ``malformed_model_output``;
    - text cut off by its token budget (``finish_reason == "length"``): once more with the budget
      times ``length_retry_factor`` (at most ``max_answer_tokens``), then ``model_output_truncated``.

    Transport failures (the engine's own ``error``) are final here: engines retry those themselves.
    """
    models = list(output_models) if output_models is not None else [None] * len(requests)
    if len(models) != len(requests):
        raise ValueError("output_models must have one entry per request")
    reqs = [replace(r, json_schema=schema_for(m)) if m is not None and r.json_schema is None else r
            for r, m in zip(requests, models)]
    results: list[LLMResponse | None] = [None] * len(reqs)
    pending = list(range(len(reqs)))
    spent: dict[int, tuple[int, int, float]] = {}
    bad_answers = [0] * len(reqs)  # empty or malformed answers so far
    length_retried = [False] * len(reqs)
    attempt = 0
    while pending:
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
            results[i] = resp
            if not resp.ok:
                continue
            if resp.finish_reason == "length":
                budget = resp.max_tokens or reqs[i].max_tokens
                if not length_retried[i] and budget:
                    larger = int(budget * length_retry_factor + 0.5)
                    if max_answer_tokens:
                        larger = min(larger, max_answer_tokens)
                    if larger > budget:
                        length_retried[i] = True
                        reqs[i] = replace(reqs[i], max_tokens=larger)
                        retry.append(i)
                        continue
                resp.error = TRUNCATED_OUTPUT
                resp.error_detail = (f"answer cut off at its budget of {budget} tokens"
                                     f"{' after a retry with a larger budget' if length_retried[i] else ''}; "
                                     f"answer ends {resp.text[-120:]!r}")
                continue
            if not resp.text.strip():
                resp.error, resp.error_detail = EMPTY_OUTPUT, f"the model answered nothing (attempt {attempt + 1})"
            elif models[i] is not None:
                try:
                    resp.parsed = parse_answer(resp.text, models[i])  # type: ignore[arg-type]
                except (ValidationError, json.JSONDecodeError, ValueError) as exc:
                    resp.error, resp.error_detail = MALFORMED, _short(exc, resp.text)
            if resp.error is not None:
                bad_answers[i] += 1
                if bad_answers[i] <= structured_retries:
                    retry.append(i)
        pending = retry
        attempt += 1
    return [r for r in results if r is not None]


def _short(exc: Exception, text: str) -> str:
    if isinstance(exc, ValidationError):
        first = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
    else:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{first}; answer starts {text[:200]!r}"
