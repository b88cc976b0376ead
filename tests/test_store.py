"""The artifact store: the same behaviour on a local folder and on S3 (moto on loopback)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from glave_tasks import schemas
from glave_tasks.errors import StoreError, StoreUnavailable
from glave_tasks.keys import InvalidRunId
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.test_keys import HOSTILE


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


def test_a_nullable_column_added_later_reads_as_nulls_from_older_tables(store: ArtifactStore) -> None:
    import pyarrow.parquet as pq

    def store_older(table: pa.Table) -> None:
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        store.write_bytes("t/videos.parquet", buf.getvalue().to_pybytes())

    # A videos table from before discover recorded local files' stat.
    older = {"video_id": ["v1"], "content_hash": ["ab" * 32], "source_uri": ["/in/a.mp4"], "file_name": ["a.mp4"],
             "size_bytes": [10], "shard": [0]}
    store_older(pa.table(older))
    back = store.read_table("t/videos.parquet", schemas.VIDEOS)
    assert back.schema == schemas.VIDEOS
    assert {k: v for k, v in back.to_pylist()[0].items() if k.startswith("file_") and k != "file_name"} == {
        "file_mtime_ns": None, "file_ctime_ns": None, "file_inode": None}
    store_older(pa.table({k: v for k, v in older.items() if k != "size_bytes"}))
    with pytest.raises(StoreError, match="missing \\['size_bytes'\\]"):  # a required column is never made up
        store.read_table("t/videos.parquet", schemas.VIDEOS)


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
    # Hostile run ids are refused before any key is built, never rewritten into one.
    for name in HOSTILE:
        with pytest.raises(InvalidRunId):
            RunLayout(name).commit("ingest", 0)
    assert all(k.startswith("runs/") for k in store.list(""))


# -- cache freshness ---------------------------------------------------------------------------


def test_local_path_never_serves_a_rewritten_object_stale(store: ArtifactStore) -> None:
    store.write_bytes("runs/r/ingest/shard-00000/files/v/f0.jpg", b"old frame, 20 bytes")
    first = store.local_path("runs/r/ingest/shard-00000/files/v/f0.jpg")
    assert first.read_bytes() == b"old frame, 20 bytes"
    # Same size, different bytes: a key-only or size-only cache would serve the old file.
    store.write_bytes("runs/r/ingest/shard-00000/files/v/f0.jpg", b"NEW frame, 20 bytes")
    again = store.local_path("runs/r/ingest/shard-00000/files/v/f0.jpg")
    assert again.read_bytes() == b"NEW frame, 20 bytes"
    assert again.name == "f0.jpg"  # callers may look at the suffix
    if not store.is_local:
        assert again != first and first.read_bytes() == b"old frame, 20 bytes"  # a reader of the old one is undisturbed
        assert store.local_path("runs/r/ingest/shard-00000/files/v/f0.jpg") == again  # cached while unchanged


def test_version_changes_with_every_rewrite(store: ArtifactStore) -> None:
    assert store.version("a.bin") is None
    store.write_bytes("a.bin", b"one")
    v1 = store.version("a.bin")
    store.write_bytes("a.bin", b"two")
    assert v1 is not None and store.version("a.bin") not in (None, v1)


# -- conditional writes and leases -------------------------------------------------------------


def test_conditional_create_and_replace(store: ArtifactStore) -> None:
    assert store.create_if_absent("runs/r/_leases/x.json", b"first")
    assert not store.create_if_absent("runs/r/_leases/x.json", b"second")
    data, version = store.read_versioned("runs/r/_leases/x.json")  # type: ignore[misc]
    assert data == b"first"
    assert store.replace_if_version("runs/r/_leases/x.json", b"third", version)
    assert not store.replace_if_version("runs/r/_leases/x.json", b"fourth", version)  # stale version loses
    assert store.read_bytes("runs/r/_leases/x.json") == b"third"
    assert store.read_versioned("runs/r/_leases/absent.json") is None
    assert not store.replace_if_version("runs/r/_leases/absent.json", b"x", version)
    assert store.list("runs/r/_leases") == ["runs/r/_leases/x.json"]  # no lock or temp files listed


def test_a_lease_admits_one_writer_and_frees_on_release_or_expiry(store: ArtifactStore) -> None:
    import threading
    import time

    from glave_tasks.errors import LeaseHeld
    from glave_tasks.lease import Lease, lease_key

    key = lease_key("r1", "ingest", 0)
    assert key == "runs/r1/_leases/ingest/shard-00000.json"
    first = Lease(store, key, what="w1", ttl_s=2, wait_s=0).acquire()
    with pytest.raises(LeaseHeld, match="being written by .* pid"):
        Lease(store, key, what="w2", ttl_s=2, wait_s=0.3).acquire()
    # Held past several ttls: the holder renews it.
    time.sleep(2.5)
    with pytest.raises(LeaseHeld):
        Lease(store, key, what="w2", ttl_s=2, wait_s=0).acquire()
    # A waiting writer gets it once the holder lets go.
    threading.Timer(0.5, first.release).start()
    second = Lease(store, key, what="w2", ttl_s=1, wait_s=10).acquire()
    assert 0.3 < second.waited_s < 5
    # A holder that stops renewing (a frozen or killed writer elsewhere) loses it after ttl...
    second._stop.set()
    time.sleep(2.5)  # the store's clock (S3 LastModified and Date) counts whole seconds
    third = Lease(store, key, what="w3", ttl_s=5, wait_s=0).acquire()
    # ...and its next renewal fails the condition, so it finds out before it could commit.
    assert second._version is not None and not store.replace_if_version(key, b"{}", second._version)
    third.release()


def test_a_conditional_write_whose_answer_was_lost_still_counts(store: ArtifactStore) -> None:
    """A create that landed but timed out looks, on retry, like someone else's lease: the token says whose."""
    from glave_tasks.lease import Lease, lease_key

    key = lease_key("r1", "track", 0)
    lease = Lease(store, key, what="w1", ttl_s=30, wait_s=0)
    assert store.create_if_absent(key, lease._body())  # the first attempt landed; its answer was lost
    lease.acquire()  # the retry finds its own token and holds the lease instead of waiting on itself
    assert lease.lost is None and lease._version is not None
    lease.release()


def test_release_is_bounded_when_a_renewal_hangs_in_the_store(store: ArtifactStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Release runs inside a pod's grace period: a renewal stuck in a slow store call cannot hold it
    for the lease's whole ttl; the lease is then left to expire."""
    import threading
    import time

    from glave_tasks import lease as lease_module
    from glave_tasks.lease import Lease, lease_key

    monkeypatch.setattr(lease_module, "RELEASE_WAIT_S", 0.5)
    lease = Lease(store, lease_key("r1", "qa", 0), what="w1", ttl_s=3, wait_s=0).acquire()
    stuck, unblock = threading.Event(), threading.Event()
    real_replace = store.replace_if_version

    def hanging_replace(key: str, data: bytes, version: str) -> bool:
        stuck.set()
        unblock.wait(30)
        return real_replace(key, data, version)

    monkeypatch.setattr(store, "replace_if_version", hanging_replace)
    assert stuck.wait(5), "the renewal thread never renewed"
    started = time.monotonic()
    lease.release()
    took = time.monotonic() - started
    unblock.set()
    assert took < 2.0, f"release waited {took:.1f} s for a hung renewal"


def test_store_faults_are_classified(tmp_path: Path) -> None:
    from glave_tasks.config import S3Options

    with socket_closed_port() as port:
        dead = ArtifactStore("s3://bucket/root", S3Options(endpoint_url=f"http://127.0.0.1:{port}",
                                                            retry_deadline_s=3.0, timeout_s=1.0),
                             cache_dir=tmp_path)
        import time

        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="store unavailable: read s3://bucket/root/a.json failed .* time"):
            dead.read_bytes("a.json")
        assert 2.9 < time.monotonic() - started < 20


def test_missing_s3_credentials_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             s3_endpoint: str, s3_bucket: str) -> None:
    from glave_tasks.config import S3Options

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    st = ArtifactStore(f"s3://{s3_bucket}/root", S3Options(endpoint_url=s3_endpoint, retry_deadline_s=1))
    with pytest.raises(StoreError, match="no S3 credentials") as err:
        st.read_bytes("a.json")
    assert "\n" not in str(err.value)


import contextlib  # noqa: E402
import socket  # noqa: E402


@contextlib.contextmanager
def socket_closed_port():  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_read_table_decodes_only_the_asked_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from glave_tasks.store import ArtifactStore

    store = ArtifactStore(str(tmp_path))
    schema = pa.schema([("video_id", pa.string()), ("mask", pa.binary()), ("label", pa.string())])
    store.write_table("t.parquet", pa.table({"video_id": ["a"], "mask": [b"x" * 100], "label": ["cat"]}, schema), schema)
    table = store.read_table("t.parquet", schema, ["video_id", "label"])
    assert table.column_names == ["video_id", "label"] and table.to_pylist() == [{"video_id": "a", "label": "cat"}]
