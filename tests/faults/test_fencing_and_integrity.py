"""Fencing and integrity faults: a stalled writer, skewed and future-dated leases, flipped bits
and torn markers in committed shards, a shard whose every video failed.

Each scenario is one the stage runner used to get wrong: a writer that lost its lease wrote on
and committed, a lease from a host whose clock ran fast locked a shard out until that date, a
damaged upstream table was published or crashed the downstream stage naming no file, a torn
marker crashed ``glave status``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from glave_tasks.errors import CorruptArtifact, LeaseHeld, LeaseLost, ShardFailed
from glave_tasks.layout import RunLayout
from glave_tasks.lease import Lease, lease_key
from glave_tasks.run import Run
from glave_tasks.runner import run_stage
from glave_tasks.status import format_status
from glave_tasks.store import ArtifactStore
from tests.support.committed import Committed
from tests.test_runner import RUN, Downstream, Upstream, make_config, plan

pytestmark = pytest.mark.faults


@pytest.fixture
def local(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "store"), cache_dir=tmp_path / "cache")


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    d = tmp_path / "inbox"
    d.mkdir()
    for i in range(2):
        (d / f"v{i}.mp4").write_bytes(f"video {i}".encode())
    return d


def _foreign_lease(store: ArtifactStore, key: str, *, expires_at: float, age_s: float) -> None:
    """A lease written by another host whose clock says ``expires_at``, last written ``age_s`` ago."""
    body = {"what": "elsewhere", "token": "f" * 32, "host": "other-host", "pid": 4242, "generation": 7,
            "ttl_s": 60.0, "renewed_at": "-", "expires_at": expires_at, "expires": "-", "released": False}
    store.write_json(key, body)
    path = Path(store.uri(key))
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_lease_dated_in_the_future_expires_by_the_stores_clock(local: ArtifactStore) -> None:
    key = lease_key(RUN, "ingest", 0)
    # Its holder's clock ran a day fast, and it stopped renewing two minutes ago.
    _foreign_lease(local, key, expires_at=time.time() + 86_400, age_s=120)
    lease = Lease(local, key, what="taker", ttl_s=60, wait_s=0).acquire()
    try:
        assert lease.generation == 8 and lease.attempt.startswith("attempt-000008-")
    finally:
        lease.release()


def test_a_live_holder_whose_clock_runs_behind_keeps_its_lease(local: ArtifactStore,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    key = lease_key(RUN, "ingest", 0)
    # Renewed a second ago, but its clock is two hours behind: its own expiry reads as long past.
    _foreign_lease(local, key, expires_at=time.time() - 7200 + 60, age_s=1)
    with pytest.raises(LeaseHeld, match="being written by other-host"):
        Lease(local, key, what="taker", ttl_s=60, wait_s=0).acquire()
    assert "behind the store's clock" in caplog.text


def test_a_writer_that_stalled_past_its_lease_stops_writing_and_never_commits(local: ArtifactStore,
                                                                               tmp_path: Path, inbox: Path) -> None:
    config = make_config(tmp_path)
    config.store.lease_ttl_s = 3
    plan(local, config, tmp_path)
    written: list[str] = []

    class Stalls(Upstream):
        def process(self, ctx):  # type: ignore[no-untyped-def]
            ctx.put_bytes(b"before", "v", "a.jpg")
            written.append("a")
            lease_file = Path(local.uri(lease_key(RUN, "upstream", 0)))
            # Frozen (SIGSTOP, a swap storm, nice 19) past the ttl: another writer takes over.
            for lease in _held:
                lease._stop.set()
            time.sleep(3.5)
            lease_file.write_text(json.dumps({"token": "someone-else", "released": False}))
            ctx.put_bytes(b"after", "v", "b.jpg")  # must not land
            written.append("b")

    _held: list[Lease] = []
    real_acquire = Lease.acquire

    def tracking_acquire(self: Lease) -> Lease:
        _held.append(self)
        return real_acquire(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Lease, "acquire", tracking_acquire)
        with pytest.raises(LeaseLost, match="lease lost"):
            run_stage(Stalls(config), local, RUN, 0, show_progress=False)
    layout = RunLayout(RUN)
    assert written == ["a"]
    assert not [k for k in local.list(layout.shard_prefix("upstream", 0)) if k.endswith("b.jpg")]
    assert not local.exists(layout.commit("upstream", 0))


def test_flipped_bits_in_a_committed_table_fail_the_reader_and_mark_the_shard_corrupt(
        local: ArtifactStore, tmp_path: Path, inbox: Path) -> None:
    config = make_config(tmp_path)
    plan(local, config, tmp_path)
    run_stage(Upstream(config), local, RUN, 0, show_progress=False)
    key = Committed(local, RUN).table("upstream", 0, "probes")
    data = bytearray(local.read_bytes(key))
    data[len(data) // 2] ^= 0x41
    data[len(data) // 3] ^= 0x08
    Path(local.uri(key)).write_bytes(bytes(data))

    with pytest.raises(CorruptArtifact, match=r"probes\.parquet: checksum differs .* upstream shard 0"):
        run_stage(Downstream(config), local, RUN, 0, show_progress=False)
    run = Run(local, RUN)
    rows = run.status(["upstream", "downstream"])["stages"]
    assert rows["upstream"]["shards"][0]["state"] == "corrupt"
    assert rows["downstream"]["shards"][0]["reason"] == "corrupt_upstream"
    assert "corrupt" in format_status(run.status(["upstream"]))
    # A re-run recomputes the damaged shard, and the reader then goes through.
    assert run_stage(Upstream(config), local, RUN, 0, show_progress=False).status == "committed"
    assert run_stage(Downstream(config), local, RUN, 0, show_progress=False).status == "committed"


def test_a_truncated_committed_file_is_named(local: ArtifactStore, tmp_path: Path, inbox: Path) -> None:
    config = make_config(tmp_path)
    plan(local, config, tmp_path)
    run_stage(Upstream(config), local, RUN, 0, show_progress=False)
    key = Committed(local, RUN).table("upstream", 0, "probes")
    Path(local.uri(key)).write_bytes(local.read_bytes(key)[:40])
    run = Run(local, RUN)
    marker = run.commit("upstream", 0)
    assert marker is not None
    with pytest.raises(CorruptArtifact, match=r"probes\.parquet: 40 bytes, committed with \d+"):
        run.read_checked("upstream", 0, key, marker)


def test_a_torn_marker_is_reported_as_torn(local: ArtifactStore, tmp_path: Path, inbox: Path) -> None:
    config = make_config(tmp_path)
    plan(local, config, tmp_path)
    run_stage(Upstream(config), local, RUN, 0, show_progress=False)
    marker = RunLayout(RUN).commit("upstream", 0)
    Path(local.uri(marker)).write_bytes(local.read_bytes(marker)[:57])
    run = Run(local, RUN)
    row = run.status(["upstream"])["stages"]["upstream"]["shards"][0]
    assert row["state"] == "torn" and "torn commit marker" in row["detail"]
    assert run.commit("upstream", 0) is None
    with pytest.raises(CorruptArtifact, match="torn commit marker"):
        run_stage(Downstream(config), local, RUN, 0, show_progress=False)
    # A marker whose bytes were altered but still parse is caught by its own checksum.
    run_stage(Upstream(config), local, RUN, 0, show_progress=False)
    text = local.read_bytes(marker).decode().replace('"videos_in": 2', '"videos_in": 3')
    Path(local.uri(marker)).write_text(text)
    assert "checksum" in run.status(["upstream"])["stages"]["upstream"]["shards"][0]["detail"]


def test_a_shard_whose_every_video_failed_never_commits(local: ArtifactStore, tmp_path: Path, inbox: Path) -> None:
    config = make_config(tmp_path, max_failure_ratio=1.0)
    plan(local, config, tmp_path)
    with pytest.raises(ShardFailed, match="2/2 videos failed .all of its videos failed"):
        run_stage(Upstream(config, fail=("v0.mp4", "v1.mp4")), local, RUN, 0, show_progress=False)
    assert Run(local, RUN).commit("upstream", 0) is None
