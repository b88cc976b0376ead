"""Request and response types shared by every language/vision engine.

A request is what one model call needs: a rendered text prompt, optional images, an optional JSON
schema for structured output. It also carries ``task`` and ``context`` (the facts the prompt was
rendered from) so that the rules engine can answer the same request without a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Union

if TYPE_CHECKING:
    from PIL.Image import Image

ImageInput = Union[str, Path, "Image"]


@dataclass
class LLMRequest:
    task: str  # prompt name, e.g. "overview"; the rules engine dispatches on it
    prompt: str
    images: list[ImageInput] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None  # constrain the answer to this JSON schema
    context: dict[str, Any] = field(default_factory=dict)  # facts behind the prompt (rules engine)
    prompt_version: str | None = None
    max_tokens: int | None = None  # None: the task's budget (engine.tasks, else engine.sampling)
    attempt: int = 0  # retry number; engines vary the sampling seed with it
    key: Any = None  # caller's handle (video id, keyframe index, ...), returned untouched


@dataclass
class LLMResponse:
    request: LLMRequest
    text: str
    generator: str  # rules | vllm | openai
    model_id: str | None
    model_revision: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    parsed: Any = None  # validated structured answer (a pydantic model) when a schema was given
    error: str | None = None  # stable reason code when the call failed
    error_detail: str = ""
    attempts: int = 1
    # Why generation stopped: "stop" (the model ended its answer), "length" (the token budget ran
    # out: the text is cut off), None when the engine does not say.
    finish_reason: str | None = None
    max_tokens: int | None = None  # the answer budget the request was sent with

    @property
    def ok(self) -> bool:
        return self.error is None

    def provenance(self) -> dict[str, Any]:
        """The PROVENANCE columns of a row this response produced."""
        return {
            "generator": self.generator, "model_id": self.model_id, "model_revision": self.model_revision,
            "prompt_version": self.request.prompt_version, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens, "latency_s": round(self.latency_s, 6),
        }


class Engine(Protocol):
    """A language/vision model behind one call: a whole list of requests at once."""

    generator: str
    model_id: str | None
    model_revision: str | None

    def generate(self, requests: list[LLMRequest]) -> list[LLMResponse]:
        """One response per request, same order. Transport failures come back as ``error``,
        never as an exception, so one bad request cannot sink a batch."""
        ...

    def close(self) -> None:
        ...


# Reason codes of model output that cannot be used (recorded per video by the stages).
EMPTY_OUTPUT = "empty_model_output"  # the model answered nothing, also after retries
TRUNCATED_OUTPUT = "model_output_truncated"  # cut off by the token budget, also after a larger one
PROMPT_TOO_LONG = "prompt_too_long"  # the prompt (images counted) leaves no room for the answer


class EngineError(Exception):
    """The engine itself cannot run (bad config, weights missing): the shard cannot proceed."""
