"""Sending a shard's requests to the engine one dependency level at a time.

Caption, bridge and QA build their requests level by level (a level's prompts need the answers
of the level before). ``LevelRunner`` sends every request of a level in one engine call, and
remembers the first failure of each video so that later levels leave that video out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from .structured import complete
from .types import Engine, LLMRequest, LLMResponse
from .video_facts import VideoFacts


@dataclass
class LevelRunner:
    """Sends levels to the engine and remembers the first failure of each video."""

    engine: Engine
    structured_retries: int = 2
    batched: bool = True  # False: one request per engine call (the reference's way; for benchmarks)
    answer_token_cap: int = 4096  # longest answer a request may ask for (half the model context)
    length_retry_factor: float = 2.0  # a cut-off answer is retried once with this much more budget
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    requests_per_task: Counter[str] = field(default_factory=Counter)
    engine_calls: int = 0

    def run(self, requests: Sequence[LLMRequest], models: Sequence[type[BaseModel] | None] | None = None) -> list[LLMResponse]:
        requests = list(requests)
        models = list(models) if models is not None else [None] * len(requests)
        self.requests_per_task.update(r.task for r in requests)
        if not requests:
            return []
        if self.batched:
            self.engine_calls += 1
            out = complete(self.engine, requests, models, structured_retries=self.structured_retries,
                           length_retry_factor=self.length_retry_factor, max_answer_tokens=self.answer_token_cap)
        else:
            out = []
            for r, m in zip(requests, models):
                self.engine_calls += 1
                out.extend(complete(self.engine, [r], [m], structured_retries=self.structured_retries,
                                    length_retry_factor=self.length_retry_factor,
                                    max_answer_tokens=self.answer_token_cap))
        for resp in out:
            if not resp.ok:
                self.fail(resp.request.key[0], resp.error or "model_error",
                          f"{resp.request.task}: {resp.error_detail}")
        return out

    def fail(self, video_id: str, reason: str, detail: str) -> None:
        self.failures.setdefault(video_id, (reason, detail))

    def alive(self, videos: Iterable[VideoFacts]) -> list[VideoFacts]:
        return [v for v in videos if v.video_id not in self.failures]
