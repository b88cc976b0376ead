"""Keys built from untrusted names (file names, run ids, stage names) never leave their prefix."""

from __future__ import annotations

import pytest

from glave_tasks.keys import MAX_SEGMENT_CHARS, InvalidRunId, is_safe_key, join_key, safe_segment, validate_run_id
from glave_tasks.layout import RunLayout, index_key

HOSTILE = [
    "../../etc/passwd",
    "..",
    ".",
    "/absolute/path.mp4",
    "C:\\Windows\\system32\\evil.mp4",
    "..\\..\\up.mp4",
    "nul\x00byte.mp4",
    "ctrl\x01\x1b[31m\n\r\t.mp4",
    "ünïcödé 视频 🎬.mp4",
    "a" * 5000 + ".mp4",
    "",
    "   ",
    "-leading-dash",
    "a/b/c",
    "%2e%2e%2fencoded",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_segment_is_one_safe_segment(name: str) -> None:
    seg = safe_segment(name)
    assert "/" not in seg and "\\" not in seg and seg not in ("", ".", "..")
    assert ".." not in seg and seg.isascii() and seg.isprintable()
    assert len(seg) <= MAX_SEGMENT_CHARS
    assert is_safe_key(seg)


def test_safe_names_are_kept_and_hostile_names_never_collide() -> None:
    assert safe_segment("video_01.mp4") == "video_01.mp4"
    assert safe_segment("nightly-2026-01-01") == "nightly-2026-01-01"
    segments = [safe_segment(n) for n in HOSTILE]
    assert len(set(segments)) == len(HOSTILE)
    # Names that differ only in characters the cleaner drops still map apart.
    assert safe_segment("a/b") != safe_segment("a\\b") != safe_segment("a b")


@pytest.mark.parametrize("name", HOSTILE)
def test_layout_keys_stay_under_the_run_prefix(name: str) -> None:
    layout = RunLayout("nightly-2026-01-01")
    prefix = layout.prefix + "/"
    assert layout.prefix == "runs/nightly-2026-01-01"
    for key in (layout.manifest, layout.videos_table, layout.table(name, 0, name), layout.commit(name, 3),
                layout.file(name, 0, name, name)):
        assert is_safe_key(key) and key.startswith(prefix)
        assert ".." not in key.split("/")
    assert layout.file("ingest", 0, name).startswith(layout.shard_prefix("ingest", 0) + "/files/")
    key = index_key(name, name)
    assert key.startswith("index/") and is_safe_key(key)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "../a", "a/./b", "a\\b", "a/b\x00", "a/ b", "a/b/"])
def test_unsafe_keys_are_recognised(key: str) -> None:
    assert not is_safe_key(key)


def test_join_key_refuses_unsafe_segments() -> None:
    assert join_key("runs", "r1", "x.json") == "runs/r1/x.json"
    with pytest.raises(ValueError):
        join_key("runs", "..", "x")


@pytest.mark.parametrize("name", HOSTILE + ["x'q", "x_q-4bfb793042'", "a..b", "run id", "r" * 97, "ü", "x\"y", "-x", ".x"])
def test_run_ids_outside_the_charset_are_refused_not_encoded(name: str) -> None:
    with pytest.raises(InvalidRunId, match="run id") as err:
        validate_run_id(name)
    assert "allowed: letters" in str(err.value)
    with pytest.raises(InvalidRunId):
        RunLayout(name)


@pytest.mark.parametrize("name", ["nightly-2026-11-22", "local-20261122T101010", "a", "A.b_c-1", "r" * 96,
                                  "x_q-4bfb793042"])
def test_valid_run_ids_are_used_verbatim(name: str) -> None:
    assert validate_run_id(name) == name
    assert RunLayout(name).prefix == f"runs/{name}"
    # Distinct ids, distinct prefixes: no encoding can make two ids share one.
    assert RunLayout(name).prefix != RunLayout(name[:-1] + ("z" if name[-1] != "z" else "y")).prefix
