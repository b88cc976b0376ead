"""The OpenAI-compatible HTTP engine against real servers on 127.0.0.1.

Small local servers specify the transport contract (retry with backoff on 503, concurrency
bound, a final failure reported per request, malformed JSON retried and then reported); the
slow test runs vLLM's own OpenAI server over a tiny random model from ``.venv-llm``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from glave_tasks.config import EngineConfig
from glave_tasks.language import LLMRequest, build_engine, complete
from glave_tasks.language.engines.openai import OpenAIEngine
from tests.support.llm_env import LLM_PYTHON, ROOT, build_tiny_model, llm_env
from tests.support.openai_server import completion


class Answer(BaseModel):
    label: str = Field(max_length=20)
    score: int = Field(ge=0, le=999)


def _engine(url: str, **kw: Any) -> OpenAIEngine:
    cfg = EngineConfig(backend="openai", base_url=url, model="served-model", revision="r1", timeout_s=5,
                       **{"retries": 3, "concurrency": 4, **kw})
    engine = build_engine(cfg)
    assert isinstance(engine, OpenAIEngine)
    return engine


def test_transient_503_is_retried_with_backoff_then_succeeds(serve) -> None:
    server = serve(lambda body, n: (503, {"error": {"message": "busy"}}) if n <= 2 else (200, completion("fine")))
    out = _engine(server.url).generate([LLMRequest(task="t", prompt="hi", prompt_version="t@1")])
    assert out[0].ok and out[0].text == "fine"
    assert len(server.bodies) == 3
    assert out[0].provenance() == {"generator": "openai", "model_id": "served-model", "model_revision": "r1",
                                   "prompt_version": "t@1", "prompt_tokens": 11, "completion_tokens": 7,
                                   "latency_s": out[0].provenance()["latency_s"]}


def test_persistent_failure_is_reported_per_request_not_raised(serve) -> None:
    server = serve(lambda body, n: (500, {"error": {"message": "down"}}))
    out = _engine(server.url, retries=1).generate([LLMRequest(task="t", prompt="a"), LLMRequest(task="t", prompt="b")])
    assert [r.error for r in out] == ["model_http_error", "model_http_error"]
    assert "HTTP 500" in out[0].error_detail
    assert len(server.bodies) == 4  # two requests, each tried twice


def test_unreachable_server_is_infrastructure_not_a_bad_request(tmp_path: Path) -> None:
    """Nothing listens: waited for within server_wait_s, then the call raises (exit 3), no
    response blames the request."""
    from glave_tasks.errors import ModelServerUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelServerUnavailable, match="did not answer for 0.5 s"):
        _engine(f"http://127.0.0.1:{port}/v1", retries=0, server_wait_s=0.5).generate([LLMRequest(task="t", prompt="a")])


def test_batch_runs_with_bounded_concurrency_and_images_as_data_urls(serve, tmp_path: Path) -> None:
    from PIL import Image

    img = tmp_path / "f.jpg"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(img)
    server = serve(lambda body, n: (200, completion(f"answer {n}")))
    reqs = [LLMRequest(task="t", prompt=f"q{i}", images=[img], key=i) for i in range(10)]
    out = _engine(server.url, concurrency=3).generate(reqs)
    assert [r.request.key for r in out] == list(range(10)) and all(r.ok for r in out)
    assert 1 < server.max_in_flight <= 3
    part = server.bodies[0]["messages"][0]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_schema_goes_as_response_format_and_malformed_json_is_retried_then_failed(serve) -> None:
    def respond(body: dict[str, Any], n: int) -> tuple[int, Any]:
        good = "ok" in body["messages"][0]["content"][-1]["text"]
        return 200, completion('{"label": "cat", "score": 3}' if good else '{"label": "cat", "sco')

    server = serve(respond)
    out = complete(_engine(server.url), [LLMRequest(task="pick", prompt="ok"), LLMRequest(task="pick", prompt="bad")],
                   [Answer, Answer], structured_retries=2)
    assert out[0].ok and out[0].parsed == Answer(label="cat", score=3)
    assert out[1].error == "malformed_model_output" and out[1].attempts == 3
    assert out[1].completion_tokens == 21, "tokens of all three attempts are counted"
    fmt = server.bodies[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["label", "score"]
    seeds = sorted(b["seed"] for b in server.bodies if "bad" in b["messages"][0]["content"][-1]["text"])
    assert seeds == [0, 1000, 2000], "each retry samples with a new seed"


# -- vLLM's own OpenAI-compatible server -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from glave_tasks.compat.subprocesses import export_to_subprocesses

    model = build_tiny_model(tmp_path_factory.mktemp("served") / "model")
    port = _free_port()
    log = tmp_path_factory.mktemp("served-log") / "server.log"
    env = export_to_subprocesses(llm_env())  # CPU torchvision fallback in the server and its workers
    cmd = [str(LLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--served-model-name", "tiny-served", "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "2048", "--gpu-memory-utilization", "0.08", "--dtype", "bfloat16",
           "--limit-mm-per-prompt", json.dumps({"image": 2}),
           "--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        import urllib.request

        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"vLLM server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"vLLM server not ready in 300 s:\n{log.read_text()[-4000:]}")
            time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_against_vllm_openai_server(vllm_server: str, tmp_path: Path) -> None:
    from PIL import Image

    img = tmp_path / "f.jpg"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(img)
    cfg = EngineConfig(backend="openai", base_url=vllm_server, model="tiny-served", timeout_s=60, concurrency=4,
                       sampling={"max_tokens": 40, "temperature": 0.8})
    engine = build_engine(cfg)
    plain = engine.generate([LLMRequest(task="t", prompt="Describe.", images=[img]),
                             LLMRequest(task="t", prompt="Describe.")])
    assert all(r.ok for r in plain), [r.error_detail for r in plain]
    assert plain[0].prompt_tokens > plain[1].prompt_tokens > 0, "the image reached the model as vision tokens"
    assert plain[0].model_id == "tiny-served" and plain[0].completion_tokens > 0
    out = complete(engine, [LLMRequest(task="pick", prompt=f"Answer {i}.") for i in range(3)], [Answer] * 3,
                   structured_retries=2)
    assert all(r.ok for r in out), [(r.error, r.error_detail) for r in out]
    assert all(isinstance(r.parsed, Answer) for r in out)
