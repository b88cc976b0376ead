"""The S3 endpoint behind a failing proxy: 503s, slow responses and a short outage are retried
and survived with the same result; an outage longer than the retry deadline ends the run as one
clean infrastructure failure (no traceback, no video blamed), and the re-run after recovery
gives the same result. A re-ingest with new settings reaches track fresh, never from a stale cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from glave_tasks.cli import main
from glave_tasks.config import S3Options
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.support import synthetic
from tests.support.committed import Committed

from .conftest import Ledger
from .harness import leftovers, shard_snapshot
from .servers import FaultyProxy

RUN = "night-s3"
STAGES = "ingest,track"


@pytest.fixture(scope="module")
def s3_inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("s3_inbox")
    synthetic.two_shot_video(d / "a_two_shot.mp4")
    synthetic.corrupt_file(d / "b_corrupt.mp4")
    return d


def write_config(path: Path, root: str, endpoint: str, cache: Path, **s3: Any) -> Path:
    # A holder that cannot renew for a ttl stops writing (it cannot prove the lease is still its
    # own): the ttl is kept well above the outages these scenarios ride out, as 60 s is in production.
    path.write_text(yaml.safe_dump({"store": {"root": root, "local_cache": str(cache), "lease_ttl_s": 30,
                                              "s3": {"endpoint_url": endpoint, **s3}}}))
    return path


def glave(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def reference(s3_inbox: Path, tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> dict[str, Any]:
    """ingest + track of the inputs on the S3 endpoint with nothing in the way."""
    import boto3

    tmp = tmp_path_factory.mktemp("s3_reference")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="glave-reference")
    cfg = write_config(tmp / "c.yaml", "s3://glave-reference/glave", s3_endpoint, tmp / "cache")
    assert main(["run", "--input", str(s3_inbox), "--run-id", RUN, "--config", str(cfg), "--stages", STAGES,
                 "--json"]) == 0
    store = ArtifactStore("s3://glave-reference/glave", S3Options(endpoint_url=s3_endpoint))
    return {s: shard_snapshot(store, RUN, s) for s in ("ingest", "track")}


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultyProxy]:
    p = FaultyProxy(s3_endpoint, seed=13)
    yield p
    p.close()


def when_committed(store: ArtifactStore, stage: str, action: Any) -> threading.Thread:
    """Run ``action`` as soon as ``stage`` shard 0 commits (watched on the direct endpoint)."""
    def watch() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not store.exists(RunLayout(RUN).commit(stage, 0)):
            time.sleep(0.05)
        action()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_flaky_slow_and_briefly_down_s3_is_survived_with_the_same_result(
        capsys: pytest.CaptureFixture[str], s3_inbox: Path, reference: dict[str, Any], proxy: FaultyProxy,
        s3_endpoint: str, s3_bucket: str, tmp_path: Path, ledger: Ledger) -> None:
    root = f"s3://{s3_bucket}/glave"
    cfg = write_config(tmp_path / "c.yaml", root, proxy.endpoint, tmp_path / "cache", retry_deadline_s=30, timeout_s=1)
    direct = ArtifactStore(root, S3Options(endpoint_url=s3_endpoint))
    proxy.fail_ratio = 0.3  # 30% of requests answered 503 SlowDown
    proxy.delay_s, proxy.slow_ratio = 1.5, 0.03  # 3% wait past the 1 s read timeout
    outage = when_committed(direct, "ingest", lambda: proxy.outage(6.0))  # down for 6 s as track starts
    code, out, err = glave(capsys, "run", "--input", str(s3_inbox), "--run-id", RUN, "--config", str(cfg),
                           "--stages", STAGES, "--json")
    outage.join(timeout=5)
    stats = dict(proxy.stats)
    ledger.inject("s3_503", stats["injected_503"])
    ledger.inject("s3_slow", stats["delayed"])
    ledger.inject("s3_outage_6s")
    assert code == 0, err[-3000:]
    assert stats["injected_503"] > 20 and stats["delayed"] > 0 and stats["refused"] > 0, stats
    assert {s: shard_snapshot(direct, RUN, s) for s in ("ingest", "track")} == reference
    assert leftovers(direct, RUN) == []
    ledger.survive("s3_503", stats["injected_503"])
    ledger.survive("s3_slow", stats["delayed"])
    ledger.survive("s3_outage_6s")


def test_s3_down_past_the_deadline_is_one_clean_failure_and_the_rerun_matches(
        capsys: pytest.CaptureFixture[str], s3_inbox: Path, reference: dict[str, Any], proxy: FaultyProxy,
        s3_endpoint: str, s3_bucket: str, tmp_path: Path, ledger: Ledger) -> None:
    root = f"s3://{s3_bucket}/glave"
    cfg = write_config(tmp_path / "c.yaml", root, proxy.endpoint, tmp_path / "cache", retry_deadline_s=3, timeout_s=1)
    direct = ArtifactStore(root, S3Options(endpoint_url=s3_endpoint))
    down = when_committed(direct, "ingest", lambda: setattr(proxy, "down", True))
    started = time.monotonic()
    code, out, err = glave(capsys, "run", "--input", str(s3_inbox), "--run-id", RUN, "--config", str(cfg),
                           "--stages", STAGES, "--json")
    down.join(timeout=5)
    ledger.inject("s3_outage_full")
    assert code == 3, err[-3000:]
    assert time.monotonic() - started < 120
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "store unavailable" in errors[0] and "retry_deadline_s=3" in errors[0]
    assert len(errors[0]) < 600
    # Nothing was blamed on a video: track did not commit, and no errors table says internal_error.
    assert not direct.exists(RunLayout(RUN).commit("track", 0))
    assert not any(k.endswith("errors.parquet") for k in direct.list(RunLayout(RUN).shard_prefix("track", 0)))
    # Status during the outage: one line, no traceback.
    code, out, err = glave(capsys, "status", "--run-id", RUN, "--config", str(cfg))
    assert code == 3 and len(err.strip().splitlines()) == 1 and "store unavailable" in err

    proxy.down = False
    code, out, err = glave(capsys, "run", "--input", str(s3_inbox), "--run-id", RUN, "--config", str(cfg),
                           "--stages", STAGES, "--json")
    assert code == 0, err[-3000:]
    assert {s: shard_snapshot(direct, RUN, s) for s in ("ingest", "track")} == reference
    assert leftovers(direct, RUN) == []
    ledger.survive("s3_outage_full")


def test_reingest_reaches_track_fresh_not_from_a_stale_cache(
        capsys: pytest.CaptureFixture[str], s3_inbox: Path, s3_endpoint: str, s3_bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, ledger: Ledger) -> None:
    root = f"s3://{s3_bucket}/glave"
    cfg = write_config(tmp_path / "c.yaml", root, s3_endpoint, tmp_path / "cache")
    args = ["run", "--input", str(s3_inbox), "--run-id", RUN, "--config", str(cfg), "--stages", STAGES, "--json"]
    assert glave(capsys, *args)[0] == 0
    store = ArtifactStore(root, S3Options(endpoint_url=s3_endpoint))
    layout = RunLayout(RUN)
    first = store.read_table(Committed(store, layout.run_id).table("ingest", 0, "keyframes")).to_pylist()
    assert {(k["width"], k["height"]) for k in first} == {(320, 240)}
    # Same run, new ingest settings: frames are rewritten under the same keys.
    monkeypatch.setenv("GLAVE__INGEST__FRAME_MAX_SIDE", "128")
    ledger.inject("stale_cache_reingest")
    assert glave(capsys, *args)[0] == 0
    keyframes = store.read_table(Committed(store, layout.run_id).table("ingest", 0, "keyframes")).to_pylist()
    assert {(k["width"], k["height"]) for k in keyframes} == {(128, 96)}
    marks = store.read_table(Committed(store, layout.run_id).table("track", 0, "marks")).to_pylist()
    assert marks, "track marked no keyframe"
    import json

    boxes = 0
    for m in marks:
        with Image.open(store.local_path(m["marked_image_key"])) as im:
            assert im.size == (128, 96)  # the marked frame was drawn on the new, smaller frame
        for b in json.loads(m["boxes_json"]).values():
            boxes += 1
            assert 0 <= b["x1"] <= b["x2"] <= 128 and 0 <= b["y1"] <= b["y2"] <= 96
    assert boxes > 0
    ledger.survive("stale_cache_reingest")
