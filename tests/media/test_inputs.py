"""Inputs as local files: a local file whose stat still matches what discover recorded while
hashing it is not read again; any other is hashed again, and different bytes are refused as
``input_changed`` before anything is decoded under the old video id."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from glave_tasks import discover
from glave_tasks.config import GlaveConfig
from glave_tasks.contract import VideoRef
from glave_tasks.errors import VideoFailure
from glave_tasks.media import inputs
from glave_tasks.media.inputs import HASH_RECOMPUTED, HASH_REUSED, local_input
from tests.support import make_config


@pytest.fixture
def config(tmp_path: Path) -> GlaveConfig:
    return make_config(tmp_path)


# Discover trusts a stat only once the file's last write is older than any timestamp tick; 20 ms
# covers the filesystems tests run on and keeps them quick.
SETTLE_S = 0.02


@pytest.fixture(autouse=True)
def short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discover, "SETTLE_NS", int(SETTLE_S * 1e9))


def write_settled(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    time.sleep(SETTLE_S)
    return path


def discovered(path: Path, config: GlaveConfig, *, recorded: bool = True) -> VideoRef:
    """The reference discover makes for a local file: its hash and, if recorded, its stat."""
    digest, identity = discover.hash_input(str(path), config)
    assert identity is not None
    return VideoRef(digest[:20], digest, str(path), path.name, identity if recorded else None)


def open_input(video: VideoRef, config: GlaveConfig) -> tuple[bytes, dict[str, float]]:
    metrics: dict[str, float] = {}

    def add(name: str, value: float) -> None:
        metrics[name] = metrics.get(name, 0.0) + value

    with local_input(video, config, add) as path:
        return Path(path).read_bytes(), metrics


def hashing_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path) -> str:
        raise AssertionError(f"{path} was read and hashed again")

    monkeypatch.setattr(inputs, "_sha256_file", refuse)


def test_an_unchanged_local_file_is_not_read_again(
        tmp_path: Path, config: GlaveConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = tmp_path / "clip.mp4"
    write_settled(clip, b"video bytes" * 1000)
    video = discovered(clip, config)
    hashing_refused(monkeypatch)
    data, metrics = open_input(video, config)
    assert data == clip.read_bytes()
    assert metrics[HASH_REUSED] == 1 and HASH_RECOMPUTED not in metrics and metrics["input_s"] >= 0


def test_a_touched_file_with_the_same_bytes_is_hashed_again_and_goes_ahead(
        tmp_path: Path, config: GlaveConfig) -> None:
    clip = tmp_path / "clip.mp4"
    write_settled(clip, b"video bytes" * 1000)
    video = discovered(clip, config)
    st = os.stat(clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    _, metrics = open_input(video, config)
    assert metrics[HASH_RECOMPUTED] == 1 and HASH_REUSED not in metrics


def test_different_bytes_of_the_same_size_and_mtime_are_refused(tmp_path: Path, config: GlaveConfig) -> None:
    clip = tmp_path / "clip.mp4"
    write_settled(clip, b"a" * 4096)
    video = discovered(clip, config)
    st = os.stat(clip)
    # Edited in place, size kept and mtime put back: ctime still tells, so the bytes are checked.
    with open(clip, "r+b") as fh:
        fh.seek(2048)
        fh.write(b"b")
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(VideoFailure) as err:
        open_input(video, config)
    assert err.value.reason == "input_changed"
    assert "clip.mp4 changed after discover" in str(err.value)


def test_a_file_renamed_over_the_input_is_refused(tmp_path: Path, config: GlaveConfig) -> None:
    clip = tmp_path / "clip.mp4"
    write_settled(clip, b"a" * 4096)
    video = discovered(clip, config)
    st = os.stat(clip)
    other = tmp_path / ".clip.mp4.tmp"
    other.write_bytes(b"b" * 4096)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, clip)  # how rsync and most uploaders replace a file
    with pytest.raises(VideoFailure) as err:
        open_input(video, config)
    assert err.value.reason == "input_changed"


def test_without_a_recorded_stat_the_file_is_hashed(tmp_path: Path, config: GlaveConfig) -> None:
    clip = tmp_path / "clip.mp4"
    write_settled(clip, b"video bytes")
    video = discovered(clip, config, recorded=False)  # a store from before the stat was recorded
    _, metrics = open_input(video, config)
    assert metrics[HASH_RECOMPUTED] == 1
    clip.write_bytes(b"other bytes")
    with pytest.raises(VideoFailure) as err:
        open_input(video, config)
    assert err.value.reason == "input_changed"


def test_a_vanished_input_is_missing(tmp_path: Path, config: GlaveConfig) -> None:
    clip = tmp_path / "clip.mp4"
    write_settled(clip, b"video bytes")
    video = discovered(clip, config)
    clip.unlink()
    clip.mkdir()  # a folder in its place is no input either
    with pytest.raises(VideoFailure) as err:
        open_input(video, config)
    assert err.value.reason == "missing_input"
