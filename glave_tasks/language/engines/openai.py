"""OpenAI-compatible HTTP engine (a hosted model, or a vLLM server in the cluster).

The official ``openai`` client does the HTTP; this module owns the time. ``timeout_s`` bounds
the connection and each read; ``request_deadline_s`` bounds the whole request, retries included,
so a server that trickles a byte every few seconds (every read succeeds) cannot hold a run; an
optional ``batch_deadline_s`` bounds one ``generate`` call. Retries with jittered exponential
backoff on 408/409/429/5xx, connection errors, timeouts and bodies that are not a chat
completion, honouring ``Retry-After``, never past the deadline. Concurrency is bounded over a
whole batch, and a request that still fails comes back with an ``error`` reason code
(``model_http_error``, ``model_unreachable``, ``model_bad_response``, ``model_deadline``) on its
response, so one bad call never sinks the batch.

A server that is down is not a bad request. When an attempt is refused, reset, timed out or
answered 5xx, the server's models and health endpoints are asked: if they answer (anything but
502/503/504), the request is the problem and is retried as above; if not, every request waits
for the server to come back (a restart) for up to ``server_wait_s``, that time not counted
against its deadlines nor its retries, and past it the whole call raises
:class:`ModelServerUnavailable` (exit 3), never a per-video failure.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...config import EngineConfig
from ...errors import ModelServerUnavailable
from ..types import PROMPT_TOO_LONG, EngineError, ImageInput, LLMRequest, LLMResponse
from .served import ServedModel

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# Answers that may mean the server itself is down (or restarting behind a proxy), not the request.
SERVER_TROUBLE_STATUS = frozenset({500, 502, 503, 504})
# What its models or health endpoint answers when the server is down: unavailable, or a proxy
# or Service with nothing behind it. Any other answer (a 404 or 501 for an endpoint a server
# lacks included) comes from a server that is up.
DOWN_STATUS = frozenset({502, 503, 504})
MAX_RETRY_AFTER_S = 30.0
PROBE_TIMEOUT_S = 5.0
MAX_PROBE_PAUSE_S = 5.0
# A request that keeps meeting a dead server (perhaps because it kills it) gets its tries back at
# most this many times; after that its failures count as usual.
MAX_OUTAGES_PER_REQUEST = 4


class OpenAIEngine(ServedModel):
    generator = "openai"
    warm_imports = ("openai",)
    # Off for a vLLM server on CPU, which cannot seed single requests (model_server.connect).
    per_request_seed = True

    def __init__(self, config: EngineConfig, **_: Any) -> None:
        import openai

        if not (config.base_url and config.model):
            raise EngineError("openai engine needs engine.base_url and engine.model")
        self.config = config
        self.model_id = config.model
        self.model_revision = config.revision
        self.client = openai.OpenAI(
            base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "not-needed",
            timeout=config.timeout_s, max_retries=0,  # retries are ours: they must respect the deadline
        )
        # Why the server will not come back (its supervisor gave up restarting it), or None while it
        # may: set by model_server.connect() for a server this process supervises.
        self.server_gone: Callable[[], str | None] | None = None
        self._outage_lock = threading.Lock()
        self._outage_since: float | None = None  # shared by the batch's threads: one wait deadline

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        if not requests:
            return []
        batch_deadline = (time.monotonic() + self.config.batch_deadline_s) if self.config.batch_deadline_s else None
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="openai") as pool:
            return list(pool.map(lambda r: self._one(r, batch_deadline), requests))

    def _one(self, req: LLMRequest, batch_deadline: float | None = None) -> LLMResponse:
        s = self.config.sampling
        # Per-task budget and temperature (engine.tasks); JSON answers decode greedily.
        gen = self.config.generation(req.task, structured=req.json_schema is not None, max_tokens=req.max_tokens)
        kwargs: dict[str, Any] = dict(
            model=self.config.model, messages=[{"role": "user", "content": _content(req)}],
            temperature=gen.temperature, top_p=gen.top_p, max_tokens=gen.max_tokens,
        )
        if s.seed is not None and self.per_request_seed:
            kwargs["seed"] = s.seed + 1000 * req.attempt
        if req.json_schema is not None:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": req.task.replace("-", "_"), "schema": req.json_schema}}
        started = time.perf_counter()
        out, failure = self._call(kwargs, batch_deadline)
        if out is None:
            reason, detail = failure
            if reason == "model_http_error" and _is_context_error(detail):
                # The server measured the prompt (its tokenizer, images counted) and refused it:
                # this request fails alone, the rest of the batch goes on.
                reason = PROMPT_TOO_LONG
            return self._failed(req, reason, detail, started)
        choice = out.choices[0] if out.choices else None
        usage = out.usage
        return LLMResponse(
            request=req, text=(choice.message.content or "") if choice else "", generator=self.generator,
            model_id=out.model or self.model_id, model_revision=self.model_revision,
            prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - started,
            finish_reason=choice.finish_reason if choice else None, max_tokens=gen.max_tokens,
        )

    def _failed(self, req: LLMRequest, reason: str, detail: str, started: float) -> LLMResponse:
        log.warning("openai request %s failed after retries: %s", req.task, detail)
        return LLMResponse(request=req, text="", generator=self.generator, model_id=self.model_id,
                           model_revision=self.model_revision, latency_s=time.perf_counter() - started,
                           error=reason, error_detail=detail)

    # -- transport with a total deadline ---------------------------------------------------------
    def _call(self, kwargs: dict[str, Any], batch_deadline: float | None) -> tuple[Any, tuple[str, str]]:
        """The parsed completion, or None and (reason, detail) once retries or the deadline ran out.
        Raises :class:`ModelServerUnavailable` when the server stays down past ``server_wait_s``."""
        import openai

        cfg = self.config
        deadline = time.monotonic() + cfg.request_deadline_s
        limit = f"request_deadline_s={cfg.request_deadline_s:g}"
        if batch_deadline is not None and batch_deadline < deadline:
            deadline, limit = batch_deadline, f"batch_deadline_s={cfg.batch_deadline_s:g}"
        last = ("model_deadline", "no attempt")
        attempt = outages = 0
        while attempt <= cfg.retries:
            if deadline - time.monotonic() <= 0:
                break
            wait = min(8.0, 0.5 * 2 ** attempt) * random.uniform(0.5, 1.0)
            trouble = False  # the failure may be the server's, not this request's
            try:
                return self._attempt_within(kwargs, deadline), ("", "")
            except _DeadlineExceeded as exc:
                return None, ("model_deadline", f"no complete answer within {limit} ({exc}); attempt {attempt + 1}")
            except openai.APIStatusError as exc:
                last = ("model_http_error", f"HTTP {exc.status_code}: {exc.message}")
                if exc.status_code not in RETRYABLE_STATUS:
                    return None, last
                trouble = exc.status_code in SERVER_TROUBLE_STATUS
                wait = _retry_after(exc.response) or wait
            except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                last = ("model_unreachable", f"{type(exc).__name__}: {exc}")
                trouble = True
            except ValueError as exc:  # pydantic's ValidationError included: not a chat completion
                last = ("model_bad_response", f"response is not a chat completion: {str(exc).splitlines()[0][:200]}")
            if trouble and outages < MAX_OUTAGES_PER_REQUEST:
                waited = self._await_server(last[1])
                if waited is not None:
                    # The server was down and is back: the time and the try were not this request's.
                    outages += 1
                    deadline += waited
                    continue
            attempt += 1
            if attempt <= cfg.retries:
                log.info("openai request: %s; retry %d in %.1f s", last[1], attempt, wait)
                time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            return None, ("model_deadline", f"no complete answer within {limit}; last error: {last[1]}")
        return None, last

    # -- a server that is down ------------------------------------------------------------------
    def _await_server(self, failure: str) -> float | None:
        """None when the server answers its endpoints (the failure was the request's); else wait
        until it does and return the seconds waited, or raise past ``server_wait_s`` (counted from
        the moment any request of this engine found it down)."""
        if self._server_answers():
            with self._outage_lock:
                self._outage_since = None
            return None
        started = time.monotonic()
        cfg = self.config
        with self._outage_lock:
            if self._outage_since is None:
                self._outage_since = started
                log.warning("model server at %s does not answer (%s); waiting up to %g s for it (engine.server_wait_s)",
                            cfg.base_url, failure, cfg.server_wait_s)
            give_up_at = self._outage_since + cfg.server_wait_s
        pause = 0.25
        while True:
            gone = self.server_gone() if self.server_gone is not None else None
            if gone:
                raise ModelServerUnavailable(f"model server at {cfg.base_url} is gone: {gone}")
            now = time.monotonic()
            if now >= give_up_at:
                raise ModelServerUnavailable(
                    f"model server at {cfg.base_url} did not answer for {cfg.server_wait_s:g} s "
                    f"(engine.server_wait_s); last error: {failure}")
            time.sleep(min(pause, give_up_at - now))
            pause = min(pause * 2, MAX_PROBE_PAUSE_S)
            if self._server_answers():
                with self._outage_lock:
                    if self._outage_since is not None:
                        log.warning("model server at %s answers again after %.1f s", cfg.base_url,
                                    time.monotonic() - self._outage_since)
                        self._outage_since = None
                return time.monotonic() - started

    def _server_answers(self) -> bool:
        """Neither the models endpoint nor ``/health`` (vLLM's; 503 while its engine is dead) says
        the server is down, and both answer."""
        base = str(self.config.base_url).rstrip("/")
        root = base[:-3] if base.endswith("/v1") else base
        key = os.environ.get(self.config.api_key_env) or "not-needed"
        timeout = min(PROBE_TIMEOUT_S, self.config.timeout_s)
        return all(_http_status(url, key, timeout) not in DOWN_STATUS for url in (base + "/models", root + "/health"))

    def _attempt_within(self, kwargs: dict[str, Any], deadline: float) -> Any:
        """One HTTP attempt, abandoned at the deadline whatever the server does (a trickle in the
        headers included). The abandoned thread stops at its next chunk or read timeout."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = self._attempt(kwargs, deadline)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["exc"] = exc

        worker = threading.Thread(target=run, name="openai-attempt", daemon=True)
        worker.start()
        worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise _DeadlineExceeded("the server was still sending when time ran out")
        if "exc" in box:
            raise box["exc"]
        return box["out"]

    def _attempt(self, kwargs: dict[str, Any], deadline: float) -> Any:
        from openai.types.chat import ChatCompletion

        timeout = max(0.05, min(self.config.timeout_s, deadline - time.monotonic()))
        body = bytearray()
        with self.client.chat.completions.with_streaming_response.create(**kwargs, timeout=timeout) as resp:
            for chunk in resp.iter_bytes():
                body += chunk
                if time.monotonic() > deadline:
                    raise _DeadlineExceeded(f"{len(body)} bytes received so far")
        return ChatCompletion.model_validate_json(bytes(body))

    def close(self) -> None:
        self.client.close()


class _DeadlineExceeded(Exception):
    pass


def _is_context_error(detail: str) -> bool:
    """An HTTP 400 that says the prompt does not fit the model's context (vLLM and OpenAI wording)."""
    text = detail.lower()
    return detail.startswith("HTTP 400") and any(k in text for k in (
        "maximum context length", "context length", "context_length_exceeded", "too long", "max_model_len"))


def _http_status(url: str, api_key: str, timeout: float) -> int:
    """The status a GET of ``url`` gets; 503 when no answer came (refused, reset, timed out)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return 503


def _retry_after(response: Any) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` in seconds), bounded."""
    try:
        value = float(response.headers.get("retry-after", ""))
    except (TypeError, ValueError, AttributeError):
        return None
    return max(0.0, min(value, MAX_RETRY_AFTER_S))


def _content(req: LLMRequest) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": _data_url(i)}} for i in req.images]
    parts.append({"type": "text", "text": req.prompt})
    return parts


def _data_url(image: ImageInput) -> str:
    if isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
        mime = "image/png" if str(image).lower().endswith(".png") else "image/jpeg"
    else:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=90)
        data, mime = buf.getvalue(), "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
