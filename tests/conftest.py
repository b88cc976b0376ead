"""Shared fixtures: stores (local folder and a real S3 endpoint on loopback) and test videos."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.config import GlaveConfig, S3Options
from glave_tasks.store import ArtifactStore

from .support import make_config, synthetic
from .support.openai_server import FakeServer

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 HTTP endpoint (moto server) on 127.0.0.1 for the whole session."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


_bucket_counter = iter(range(10_000))


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the loopback endpoint."""
    import boto3

    name = f"glave-test-{next(_bucket_counter)}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """The same store tests run against a local folder and against S3 on loopback."""
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return ArtifactStore(f"s3://{bucket}/root", S3Options(endpoint_url=endpoint), cache_dir=tmp_path / "cache")


@pytest.fixture
def config(tmp_path: Path) -> GlaveConfig:
    """Embedded-default config with everything under tmp_path."""
    return make_config(tmp_path)


@pytest.fixture(scope="session")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of input videos: two synthetic videos with ground truth and the real clip."""
    d = tmp_path_factory.mktemp("videos")
    synthetic.two_shot_video(d / "two_shot.mp4").to_json()
    synthetic.static_video(d / "static.mp4")
    return d


@pytest.fixture(scope="session")
def two_shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synthetic.GroundTruth]:
    d = tmp_path_factory.mktemp("two_shot")
    gt = synthetic.two_shot_video(d / "two_shot.mp4")
    return d / "two_shot.mp4", gt


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    """Starts scriptable OpenAI-compatible servers; all are closed after the test."""
    servers: list[FakeServer] = []

    def start(respond: Callable[[dict[str, Any], int], tuple[int, Any]]) -> FakeServer:
        servers.append(FakeServer(respond))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
