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
from ..types import EngineError, ImageInput, LLMRequest, LLMResponse
from ...weights import resolve_weights
from .served import ServedModel

log = logging.getLogger(__name__)


class VLLMEngine(ServedModel):
    generator = "vllm"

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
            raise EngineError("vllm engine needs caption.engine.model or caption.engine.weights")
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

    def _sampling(self, req: LLMRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = self.config.sampling
        # A retry must not repeat the same sample: the seed moves with the attempt number.
        seed = None if s.seed is None or not self.per_request_seed else s.seed + 1000 * req.attempt
        structured = StructuredOutputsParams(json=req.json_schema) if req.json_schema is not None else None
        return SamplingParams(temperature=s.temperature, top_p=s.top_p, max_tokens=req.max_tokens or s.max_tokens,
                              seed=seed, structured_outputs=structured)

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        if not requests:
            return []
        messages = [[{"role": "user", "content": _content(r)}] for r in requests]
        params = [self._sampling(r) for r in requests]
        started = time.perf_counter()
        outputs = self.llm.chat(messages, params, use_tqdm=False)
        # Offline batches have no per-request wall time: each request carries its share of the batch.
        share = (time.perf_counter() - started) / len(requests)
        responses = []
        for req, out in zip(requests, outputs):
            completion = out.outputs[0]
            responses.append(LLMResponse(
                request=req, text=completion.text, generator=self.generator, model_id=self.model_id,
                model_revision=self.model_revision, prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(completion.token_ids), latency_s=share,
            ))
        return responses

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
