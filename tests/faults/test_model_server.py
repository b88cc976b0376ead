"""A misbehaving OpenAI-compatible server: invalid bodies, invalid JSON answers, 500s and a
trickle of one byte every 2 s are retried, recorded with a reason code, and never hang a batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from glave_tasks.config import EngineConfig
from glave_tasks.language import LLMRequest, build_engine, complete
from glave_tasks.language.engines.openai import OpenAIEngine

from .conftest import Ledger
from .servers import ModelServer, Reply


class Pick(BaseModel):
    label: str


@pytest.fixture
def model_server() -> Iterator[Any]:
    servers: list[ModelServer] = []

    def start(script: Any) -> ModelServer:
        servers.append(ModelServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def engine(url: str, **kw: Any) -> OpenAIEngine:
    cfg = EngineConfig(backend="openai", base_url=url, model="served-model",
                       **{"timeout_s": 10, "retries": 3, "concurrency": 4, "request_deadline_s": 30, **kw})
    built = build_engine(cfg)
    assert isinstance(built, OpenAIEngine)
    return built


def test_trickling_server_is_cut_at_the_request_deadline(model_server: Any, ledger: Ledger) -> None:
    server = model_server(lambda body, n: Reply.trickle(every_s=2.0))
    eng = engine(server.url, request_deadline_s=3, timeout_s=60)
    started = time.monotonic()
    out = eng.generate([LLMRequest(task="t", prompt="a"), LLMRequest(task="t", prompt="b")])
    took = time.monotonic() - started
    ledger.inject("model_trickle", 2)
    assert [r.error for r in out] == ["model_deadline", "model_deadline"]
    assert "request_deadline_s=3" in out[0].error_detail
    # Every read succeeded (a byte every 2 s, read timeout 60 s): only the total deadline ends it.
    assert 2.5 < took < 6, took
    ledger.survive("model_trickle", 2)


def test_batch_deadline_bounds_a_whole_batch(model_server: Any, ledger: Ledger) -> None:
    server = model_server(lambda body, n: Reply.trickle(every_s=1.0) if "slow" in str(body) else Reply.ok("fast"))
    eng = engine(server.url, request_deadline_s=60, batch_deadline_s=2, concurrency=2)
    started = time.monotonic()
    out = eng.generate([LLMRequest(task="t", prompt="slow"), LLMRequest(task="t", prompt="quick")])
    ledger.inject("model_trickle")
    assert time.monotonic() - started < 5
    assert out[0].error == "model_deadline" and "batch_deadline_s=2" in out[0].error_detail
    assert out[1].ok and out[1].text == "fast"
    ledger.survive("model_trickle")


def test_500s_and_invalid_bodies_are_retried_then_succeed(model_server: Any, ledger: Ledger) -> None:
    faults = {1: Reply.error(500), 2: Reply.not_json(), 3: Reply.error(503)}
    server = model_server(lambda body, n: faults.get(n, Reply.ok("fine")))
    out = engine(server.url).generate([LLMRequest(task="t", prompt="a")])
    ledger.inject("model_http_500")
    ledger.inject("model_invalid_body")
    ledger.inject("model_http_503")
    assert out[0].ok and out[0].text == "fine"
    assert len(server.requests) == 4
    ledger.survive("model_http_500")
    ledger.survive("model_invalid_body")
    ledger.survive("model_http_503")


def test_persistent_faults_are_recorded_with_their_reason(model_server: Any, ledger: Ledger) -> None:
    def script(body: dict[str, Any], n: int) -> Reply:
        text = str(body)
        return Reply.error(500) if "down" in text else Reply.not_json() if "garbled" in text else Reply.error(400)

    server = model_server(script)
    out = engine(server.url, retries=2).generate(
        [LLMRequest(task="t", prompt="down"), LLMRequest(task="t", prompt="garbled"), LLMRequest(task="t", prompt="bad")])
    ledger.inject("model_http_500", 3)
    ledger.inject("model_invalid_body", 3)
    ledger.inject("model_http_400")
    assert [r.error for r in out] == ["model_http_error", "model_bad_response", "model_http_error"]
    assert "HTTP 500" in out[0].error_detail and "HTTP 400" in out[2].error_detail
    # 500 and a garbled body are retried (3 tries each); a 400 is not worth repeating.
    assert len(server.requests) == 7
    ledger.survive("model_http_500", 3)  # recorded, not raised, batch went on
    ledger.survive("model_invalid_body", 3)
    ledger.survive("model_http_400")


def test_invalid_json_answers_are_retried_then_recorded(model_server: Any, ledger: Ledger) -> None:
    def script(body: dict[str, Any], n: int) -> Reply:
        if "good" in str(body) and n > 2:
            return Reply.ok('{"label": "cat"}')
        return Reply.ok('{"label": "ca')

    server = model_server(script)
    out = complete(engine(server.url), [LLMRequest(task="t", prompt="good"), LLMRequest(task="t", prompt="never")],
                   [Pick, Pick], structured_retries=2)
    ledger.inject("model_invalid_json", 2 + 3)
    assert out[0].ok and out[0].parsed == Pick(label="cat")
    assert out[1].error == "malformed_model_output" and out[1].attempts == 3
    ledger.survive("model_invalid_json", 5)


def test_empty_and_length_stopped_answers_are_retried_then_recorded(model_server: Any, ledger: Ledger) -> None:
    def script(body: dict[str, Any], n: int) -> Reply:
        text = str(body)
        if "empty" in text:
            return Reply.ok("")
        if "cut" in text:
            return Reply.ok("The man in the red coat walks toward the", finish_reason="length")
        return Reply.ok("A complete answer.")

    server = model_server(script)
    out = complete(engine(server.url),
                   [LLMRequest(task="t", prompt=p) for p in ("empty", "cut", "fine")], structured_retries=2)
    ledger.inject("model_empty", 3)
    ledger.inject("model_length_stop", 2)
    assert out[0].error == "empty_model_output" and out[0].attempts == 3
    assert out[1].error == "model_output_truncated" and out[1].attempts == 2
    # The retry of a cut-off answer asked for a larger budget.
    budgets = [r["max_tokens"] for r in server.requests if "cut" in str(r)]
    assert len(budgets) == 2 and budgets[1] > budgets[0]
    assert out[2].ok and out[2].text == "A complete answer."
    ledger.survive("model_empty", 3)
    ledger.survive("model_length_stop", 2)
