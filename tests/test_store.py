"""The artifact store: the same behaviour on a local folder and on S3 (moto on loopback)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from glave_tasks import schemas
from glave_tasks.errors import StoreError
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore

from .test_keys import HOSTILE


def test_bytes_and_json_round_trip(store: ArtifactStore) -> None:
    store.write_bytes("a/b/blob.bin", b"\x00\x01payload")
    assert store.read_bytes("a/b/blob.bin") == b"\x00\x01payload"
    store.write_json("a/meta.json", {"n": 1, "name": "ü"})
    assert store.read_json("a/meta.json") == {"n": 1, "name": "ü"}
    assert store.exists("a/meta.json") and not store.exists("a/other.json")


def test_overwrite_replaces_content(store: ArtifactStore) -> None:
    store.write_bytes("k/x.bin", b"first")
    store.write_bytes("k/x.bin", b"second")
    assert store.read_bytes("k/x.bin") == b"second"
    assert store.list("k") == ["k/x.bin"]  # no temp files left behind


def test_missing_artifact_is_a_store_error(store: ArtifactStore) -> None:
    with pytest.raises(StoreError, match="missing artifact"):
        store.read_bytes("nope/x.bin")
    with pytest.raises(StoreError, match="missing artifact"):
        store.local_path("nope/x.bin")


def test_tables_are_checked_against_their_schema(store: ArtifactStore) -> None:
    rows = [{"video_id": "v1", "cut_index": 0, "frame_index": 60, "timestamp_s": 6.0, "keyframe_index": 1}]
    store.write_table("t/cuts.parquet", schemas.rows_to_table(rows, schemas.CUTS), schemas.CUTS)
    back = store.read_table("t/cuts.parquet", schemas.CUTS)
    assert back.schema == schemas.CUTS and back.to_pylist() == rows
    wrong = pa.table({"video_id": ["v1"], "surprise": [1]})
    with pytest.raises(StoreError, match="missing .*unexpected \\['surprise'\\]"):
        store.write_table("t/bad.parquet", wrong, schemas.CUTS)
    assert not store.exists("t/bad.parquet")


def test_list_list_dirs_and_delete_prefix(store: ArtifactStore) -> None:
    for key in ("p/s1/a.bin", "p/s1/sub/b.bin", "p/s2/c.bin", "q/d.bin"):
        store.write_bytes(key, b"x")
    assert store.list("p") == ["p/s1/a.bin", "p/s1/sub/b.bin", "p/s2/c.bin"]
    assert store.list_dirs("p") == ["s1", "s2"]
    assert list(store.iter_keys("p", ".bin")) == store.list("p")
    store.delete_prefix("p/s1")
    assert store.list("p") == ["p/s2/c.bin"] and store.exists("q/d.bin")
    assert store.list("absent") == [] and store.list_dirs("absent") == []


def test_local_path_gives_a_readable_file(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"video bytes")
    store.put_file(src, "in/video.mp4")
    local = store.local_path("in/video.mp4")
    assert local.read_bytes() == b"video bytes"
    if not store.is_local:
        assert str(local).startswith(str(store.cache_dir))


@pytest.mark.parametrize("key", ["../escape.bin", "/abs.bin", "a/../../b", "a\\..\\b", "a/\x00b", ""])
def test_unsafe_keys_are_refused_before_any_io(store: ArtifactStore, key: str) -> None:
    with pytest.raises(StoreError, match="unsafe object key"):
        store.write_bytes(key, b"x")
    with pytest.raises(StoreError, match="unsafe object key"):
        store.read_bytes(key)


def test_hostile_names_never_escape_the_run_prefix(store: ArtifactStore, tmp_path: Path) -> None:
    layout = RunLayout("nightly")
    written = []
    for name in HOSTILE:
        key = layout.file("ingest", 0, name, name)
        store.write_bytes(key, name.encode("utf-8", "surrogatepass"))
        written.append(key)
        assert key.startswith("runs/nightly/ingest/shard-00000/files/")
    # Every object is exactly where its key says, under the run prefix, and nothing else exists.
    assert sorted(store.list("")) == sorted(written)
    assert all(k.startswith(layout.prefix + "/") for k in store.list(""))
    if store.is_local:
        root = Path(store.root).resolve()
        for key in written:
            assert Path(store.uri(key)).resolve().is_relative_to(root)
        outside = [p for p in root.parent.rglob("*") if p.is_file() and not p.resolve().is_relative_to(root)]
        assert all("cache" in p.parts for p in outside)
    # Hostile run ids too.
    for name in HOSTILE:
        key = RunLayout(name).commit("ingest", 0)
        store.write_json(key, {"ok": True})
        assert key.startswith("runs/") and key.count("/") == 4
    assert all(k.startswith("runs/") for k in store.list(""))
