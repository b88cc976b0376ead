"""OpenAI-compatible HTTP engine (a hosted model, or a vLLM server in the cluster).

The official ``openai`` client does the transport: timeouts and retries with exponential backoff
on 408/409/429/5xx and connection errors (``max_retries``, honouring ``Retry-After``). This
module adds bounded concurrency over a whole batch and turns a request that still fails into
an ``error`` on its response, so one bad call never sinks the batch.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...config import EngineConfig
from .served import ServedModel
from ..types import EngineError, ImageInput, LLMRequest, LLMResponse

log = logging.getLogger(__name__)


class OpenAIEngine(ServedModel):
    generator = "openai"

    def __init__(self, config: EngineConfig, **_: Any) -> None:
        import openai

        if not (config.base_url and config.model):
            raise EngineError("openai engine needs caption.engine.base_url and caption.engine.model")
        self.config = config
        self.model_id = config.model
        self.model_revision = config.revision
        self.client = openai.OpenAI(
            base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "not-needed",
            timeout=config.timeout_s, max_retries=config.retries,
        )

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="openai") as pool:
            return list(pool.map(self._one, requests))

    def _one(self, req: LLMRequest) -> LLMResponse:
        import openai

        s = self.config.sampling
        kwargs: dict[str, Any] = dict(
            model=self.config.model, messages=[{"role": "user", "content": _content(req)}],
            temperature=s.temperature, top_p=s.top_p, max_tokens=req.max_tokens or s.max_tokens,
        )
        if s.seed is not None:
            kwargs["seed"] = s.seed + 1000 * req.attempt
        if req.json_schema is not None:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": req.task.replace("-", "_"), "schema": req.json_schema}}
        started = time.perf_counter()
        try:
            out = self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            return self._failed(req, "model_http_error", f"HTTP {exc.status_code}: {exc.message}", started)
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            return self._failed(req, "model_unreachable", f"{type(exc).__name__}: {exc}", started)
        choice = out.choices[0] if out.choices else None
        usage = out.usage
        return LLMResponse(
            request=req, text=(choice.message.content or "") if choice else "", generator=self.generator,
            model_id=out.model or self.model_id, model_revision=self.model_revision,
            prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - started,
        )

    def _failed(self, req: LLMRequest, reason: str, detail: str, started: float) -> LLMResponse:
        log.warning("openai request %s failed after retries: %s", req.task, detail)
        return LLMResponse(request=req, text="", generator=self.generator, model_id=self.model_id,
                           model_revision=self.model_revision, latency_s=time.perf_counter() - started,
                           error=reason, error_detail=detail)

    def close(self) -> None:
        self.client.close()


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
