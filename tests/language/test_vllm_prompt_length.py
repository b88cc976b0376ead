"""The vLLM engine measures each prompt before the batch: one that leaves no room for an answer
fails alone (prompt_too_long), the others keep a budget inside the context; a batch vLLM refuses
anyway is split so that only the refused request fails. vLLM itself is replaced by a recording
stand-in here (the real engine runs in the slow vLLM tests); the logic under test is ours."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from glave_tasks.config import EngineConfig
from glave_tasks.language.engines.vllm import VLLMEngine
from glave_tasks.language.types import LLMRequest


class Processor:
    """Counts 1 token per character of text and 1000 per image, like a VLM processor expands them."""

    def apply_chat_template(self, conversation: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        n = sum(len(p["text"]) if p["type"] == "text" else 1000 for m in conversation for p in m["content"])
        return {"input_ids": [list(range(n))]}


class LLM:
    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[list[Any]] = []
        self.refuse = refuse

    def chat(self, messages: list[Any], params: list[Any], use_tqdm: bool = False) -> list[Any]:
        self.calls.append(messages)
        if self.refuse and any(self.refuse in m[0]["content"][-1]["text"] for m in messages):
            raise ValueError("The decoder prompt (length 9000) is longer than the maximum model length of 4096.")
        return [SimpleNamespace(prompt_token_ids=[0] * 10,
                                outputs=[SimpleNamespace(text=f"ok {p}", token_ids=[1, 2], finish_reason="stop")])
                for p in params]


def _engine(llm: LLM, processor: Any) -> VLLMEngine:
    engine = VLLMEngine.__new__(VLLMEngine)  # no model start: the stand-ins take vLLM's place
    engine.config = EngineConfig(backend="vllm", model="m", max_model_len=4096)
    engine.model_id, engine.model_revision, engine.llm, engine._proc = "m", None, llm, processor
    engine._sampling = lambda req, budget=None: budget  # type: ignore[method-assign]
    return engine


def test_an_over_long_prompt_fails_alone_and_budgets_stay_in_the_context() -> None:
    llm = LLM()
    engine = _engine(llm, Processor())
    reqs = [LLMRequest(task="attention", prompt="short", key=0),
            LLMRequest(task="attention", prompt="x" * 100, images=[], key=1),
            LLMRequest(task="merge", prompt="y" * 3000, key=2),  # fits, with 1096 tokens left
            LLMRequest(task="merge", prompt="z" * 4090, key=3)]  # 6 tokens left: no room
    out = engine.generate(reqs)
    assert [r.request.key for r in out] == [0, 1, 2, 3]
    assert [r.error for r in out] == [None, None, None, "prompt_too_long"]
    assert "4090 tokens" in out[3].error_detail
    assert [r.max_tokens for r in out[:3]] == [1536, 1536, 4096 - 3000]  # the task's budget, or what fits
    assert len(llm.calls) == 1 and len(llm.calls[0]) == 3  # one batch without the refused prompt


def test_a_batch_vllm_refuses_is_split_so_only_the_refused_request_fails() -> None:
    llm = LLM(refuse="HUGE")
    engine = _engine(llm, None)  # no processor: vLLM's own check is the only one
    reqs = [LLMRequest(task="overview", prompt=p, key=i) for i, p in enumerate(["a", "HUGE", "c"])]
    out = engine.generate(reqs)
    assert [r.error for r in out] == [None, "prompt_too_long", None]
    assert [r.text for r in out if r.ok] == ["ok 1536", "ok 1536"]
