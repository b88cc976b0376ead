"""In-process vLLM engine: the whole list of requests goes to one offline ``LLM.chat`` call.

vLLM schedules the batch itself (continuous batching, prefix caching), which is why stages hand
it a full dependency level of a shard at once instead of one video at a time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ...config import EngineConfig, S3Options
from ...contract import Resources
from ...weights import resolve_weights
from ..types import PROMPT_TOO_LONG, EngineError, ImageInput, LLMRequest, LLMResponse
from .served import ServedModel

log = logging.getLogger(__name__)

MIN_ANSWER_TOKENS = 64  # a prompt that leaves less room than this for the answer fails alone


def _is_length_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("maximum context length", "maximum model length", "too long", "max_model_len",
                                   "exceeds"))


class VLLMEngine(ServedModel):
    generator = "vllm"
    warm_imports = ("vllm",)  # it starts threads at import: the launcher leaves it out (NEVER_PRELOAD)

    @classmethod
    def resources(cls, config: EngineConfig) -> Resources:
        return Resources(cpu="8", memory="48Gi", gpus=config.tensor_parallel_size)

    def __init__(self, config: EngineConfig, *, cache_dir: str = "var/cache", s3: S3Options | None = None,
                 **engine_overrides: Any) -> None:
        from ...compat.subprocesses import export_to_subprocesses

        # vLLM inspects models and runs its engine core in child processes; they need the same
        # CPU torchvision fallback as this one (no-op on CUDA builds).
        export_to_subprocesses()
        import torch

        if torch.version.cuda is None:
            from ...compat.torchvision_ops import ensure_torchvision_ops

            ensure_torchvision_ops()
        from vllm import LLM

        self.config = config
        source = config.weights or config.model
        if source is None:
            raise EngineError("vllm engine needs engine.model or engine.weights")
        self.model_path = str(resolve_weights(source, cache_dir, s3)) if config.weights else source
        self.model_id = config.model or Path(self.model_path).name
        self.model_revision = config.revision
        kwargs: dict[str, Any] = dict(
            model=self.model_path, revision=None if config.weights else config.revision,
            tokenizer=self.model_path if config.weights else None, dtype=config.dtype,
            tensor_parallel_size=config.tensor_parallel_size, max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization, seed=config.sampling.seed or 0,
            # Attention and differential prompts always carry two frames.
            limit_mm_per_prompt={"image": max(2, config.max_images_per_prompt)},
            # JSON answers must terminate even when the model rambles: xgrammar with no free whitespace.
            structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
        )
        if torch.version.cuda is None and config.cpu_kv_cache_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(config.cpu_kv_cache_gib * 2**30)
        kwargs.update(engine_overrides)
        started = time.perf_counter()
        try:
            self.llm = LLM(**{k: v for k, v in kwargs.items() if v is not None})
        except Exception as exc:  # noqa: BLE001 - report why the engine cannot start, in one line
            raise EngineError(f"vLLM engine for {source!r} did not start: {type(exc).__name__}: {exc}") from exc
        self.startup_s = time.perf_counter() - started
        from vllm.platforms import current_platform

        # vLLM's CPU backend crashes when a seeded request's prefill is split across steps (the CPU
        # generator has no offset to rewind), so on CPU the engine-wide seed alone is used; the
        # global generator still advances between attempts, so retries sample anew.
        self.per_request_seed = not current_platform.is_cpu()
        log.info("vLLM engine %s ready in %.1f s", self.model_id, self.startup_s)

    def _sampling(self, req: LLMRequest, max_tokens: int | None = None) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = self.config.sampling
        # A retry must not repeat the same sample: the seed moves with the attempt number.
        seed = None if s.seed is None or not self.per_request_seed else s.seed + 1000 * req.attempt
        structured = StructuredOutputsParams(json=req.json_schema) if req.json_schema is not None else None
        gen = self.config.generation(req.task, structured=req.json_schema is not None, max_tokens=req.max_tokens)
        return SamplingParams(temperature=gen.temperature, top_p=gen.top_p, max_tokens=max_tokens or gen.max_tokens,
                              seed=seed, structured_outputs=structured)

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        if not requests:
            return []
        messages = [[{"role": "user", "content": _content(r)}] for r in requests]
        responses: list[LLMResponse | None] = [None] * len(requests)
        budgets: list[int] = [0] * len(requests)
        runnable: list[int] = []
        # One over-long prompt would make vLLM reject the whole batch: each prompt is measured
        # first (the model's own processor, images included); one that leaves no room for an
        # answer fails alone, and the answer budget of the others is kept inside the context.
        for i, (req, msgs) in enumerate(zip(requests, messages)):
            wanted = self.config.generation(req.task, structured=req.json_schema is not None,
                                            max_tokens=req.max_tokens).max_tokens
            length = self.prompt_length(msgs)
            room = self.config.max_model_len - (length or 0)
            if length is not None and room < MIN_ANSWER_TOKENS:
                responses[i] = self._failed(req, PROMPT_TOO_LONG, f"prompt of {length} tokens (images included) "
                                            f"leaves {room} of max_model_len {self.config.max_model_len} for the answer")
                continue
            budgets[i] = min(wanted, room)
            runnable.append(i)
        for i, resp in zip(runnable, self._run([requests[i] for i in runnable], [messages[i] for i in runnable],
                                               [budgets[i] for i in runnable])):
            responses[i] = resp
        return [r for r in responses if r is not None]

    def _run(self, requests: list[LLMRequest], messages: list[Any], budgets: list[int]) -> list[LLMResponse]:
        if not requests:
            return []
        params = [self._sampling(r, b) for r, b in zip(requests, budgets)]
        started = time.perf_counter()
        try:
            outputs = self.llm.chat(messages, params, use_tqdm=False)
        except ValueError as exc:
            # vLLM validates every prompt before scheduling: a prompt it refuses (too long by
            # its own count) sinks the batch. Isolate it: run the requests one by one.
            if len(requests) == 1:
                return [self._failed(requests[0], PROMPT_TOO_LONG if _is_length_error(exc) else "model_rejected",
                                     f"{type(exc).__name__}: {str(exc)[:300]}")]
            log.warning("vLLM rejected a batch of %d (%s); sending its requests one by one", len(requests), exc)
            return [r for req, m, b in zip(requests, messages, budgets) for r in self._run([req], [m], [b])]
        # Offline batches have no per-request wall time: each request carries its share of the batch.
        share = (time.perf_counter() - started) / len(requests)
        responses = []
        for req, out, budget in zip(requests, outputs, budgets):
            completion = out.outputs[0]
            responses.append(LLMResponse(
                request=req, text=completion.text, generator=self.generator, model_id=self.model_id,
                model_revision=self.model_revision, prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids), latency_s=share,
                finish_reason=completion.finish_reason, max_tokens=budget,
            ))
        return responses

    def prompt_length(self, messages: list[dict[str, Any]]) -> int | None:
        """Tokens of one chat prompt as the model sees it (images expanded to their tokens), from
        the model's own processor; None when the model ships no processor that can tell."""
        processor = self._processor()
        if processor is None:
            return None
        conversation = [{"role": m["role"], "content": [
            {"type": "image", "image": p["image_pil"]} if p["type"] == "image_pil" else p for p in m["content"]]}
            for m in messages]
        try:
            ids = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
                                                return_dict=True)["input_ids"]
        except Exception as exc:  # noqa: BLE001 - a processor that cannot count: vLLM will check
            log.debug("prompt length unknown (%s)", exc)
            return None
        return len(ids[0]) if ids and isinstance(ids[0], list) else len(ids)

    def _processor(self) -> Any:
        if not hasattr(self, "_proc"):
            try:
                from transformers import AutoProcessor

                revision = None if self.config.weights else self.config.revision
                self._proc = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                    self.model_path, revision=revision)
            except Exception as exc:  # noqa: BLE001 - counted by vLLM instead
                log.info("no processor to measure prompts with (%s); vLLM's own check applies", exc)
                self._proc = None
        return self._proc

    def _failed(self, req: LLMRequest, reason: str, detail: str) -> LLMResponse:
        log.warning("vllm request %s failed: %s", req.task, detail)
        return LLMResponse(request=req, text="", generator=self.generator, model_id=self.model_id,
                           model_revision=self.model_revision, error=reason, error_detail=detail)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if shutdown is not None and hasattr(shutdown, "shutdown"):
                shutdown.shutdown()
            self.llm = None


def _content(req: LLMRequest) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image_pil", "image_pil": _pil(img)} for img in req.images]
    parts.append({"type": "text", "text": req.prompt})
    return parts


def _pil(image: ImageInput) -> Any:
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return im.convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image
