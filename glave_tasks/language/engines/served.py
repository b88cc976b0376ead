"""What engines that serve a named model (``vllm``, ``openai``) declare about themselves."""

from __future__ import annotations

from ...backends import Backend
from ...config import EngineConfig
from ...contract import Resources


class ServedModel(Backend):
    @classmethod
    def model_ids(cls, config: EngineConfig) -> dict[str, str]:
        return {"engine": config.backend, "model": str(config.model or ""), "revision": str(config.revision or ""),
                "weights": str(config.weights or "")}

    @classmethod
    def resources(cls, config: EngineConfig) -> Resources:
        return Resources(cpu="1", memory="1Gi")  # the model runs elsewhere (an HTTP server)
