"""Discover and the nightly increment: videos by content hash, shard plan, and a second night
that skips what this pipeline version already annotated (unless asked to reprocess)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from glave_tasks import stages
from glave_tasks.config import GlaveConfig
from glave_tasks.discover import discover, list_inputs
from glave_tasks.errors import GlaveError
from glave_tasks.keys import InvalidRunId, is_safe_key
from glave_tasks.layout import RunLayout
from glave_tasks.local_run import run_pipeline
from glave_tasks.store import ArtifactStore
from tests.support import make_config as base_config
from tests.support import synthetic


def make_config(tmp_path: Path, **run: object) -> GlaveConfig:
    return base_config(tmp_path, run={"shard_size": 2, **run})


def fill(d: Path, n: int) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"clip{i}.mp4").write_bytes(f"content {i}".encode())
    return [f"clip{i}.mp4" for i in range(n)]


def videos(store: ArtifactStore, run_id: str) -> list[dict]:
    return store.read_table(RunLayout(run_id).videos_table).to_pylist()


def test_discover_plans_shards_by_content(store: ArtifactStore, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    fill(inbox, 5)
    (inbox / "sub").mkdir()
    shutil.copy(inbox / "clip0.mp4", inbox / "sub" / "renamed.MOV")  # same bytes: same video
    (inbox / "readme.txt").write_text("not an input")
    manifest = discover(store, make_config(tmp_path), str(inbox), "night-1")
    assert manifest["num_videos"] == 5 and manifest["duplicates"] == 1
    assert manifest["shards"] == [0, 1, 2]
    rows = videos(store, "night-1")
    assert [r["shard"] for r in rows] == [0, 0, 1, 1, 2]
    assert all(len(r["video_id"]) == 20 and r["content_hash"].startswith(r["video_id"]) for r in rows)
    assert {r["file_name"] for r in rows} == {f"clip{i}.mp4" for i in range(5)}


def test_discover_is_stable_for_a_run(store: ArtifactStore, tmp_path: Path) -> None:
    fill(tmp_path / "inbox", 3)
    first = discover(store, make_config(tmp_path), str(tmp_path / "inbox"), "night-1")
    fill(tmp_path / "inbox2", 1)
    # A retried discover task never re-plans shards under stages that already ran.
    assert discover(store, make_config(tmp_path), str(tmp_path / "inbox2"), "night-1") == first


def test_discover_reads_an_s3_prefix(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for i in range(3):
        s3.put_object(Bucket=s3_bucket, Key=f"inbox/day/c{i}.mp4", Body=f"v{i}".encode())
    s3.put_object(Bucket=s3_bucket, Key="inbox/day/notes.txt", Body=b"x")
    config = make_config(tmp_path)
    config.store.s3.endpoint_url = s3_endpoint
    found = list_inputs(f"s3://{s3_bucket}/inbox", config)
    assert [u for u, _ in found] == [f"s3://{s3_bucket}/inbox/day/c{i}.mp4" for i in range(3)]
    store = ArtifactStore(f"s3://{s3_bucket}/store", config.store.s3)
    assert discover(store, config, f"s3://{s3_bucket}/inbox", "n1", max_videos=2)["num_videos"] == 2
    # Objects have no stat to trust: ingest hashes them in the download pass.
    assert all(r["file_mtime_ns"] is None and r["file_inode"] is None for r in videos(store, "n1"))
    # An empty prefix is a quiet night; a missing bucket is a mistake.
    assert list_inputs(f"s3://{s3_bucket}/nothing-yet", config) == []
    with pytest.raises(GlaveError, match="input prefix not found"):
        list_inputs("s3://no-such-bucket-here/inbox", config)


def test_missing_input_prefix_is_a_user_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with pytest.raises(GlaveError, match="input prefix not found"):
        discover(ArtifactStore(config.store.root), config, str(tmp_path / "absent"), "n1")


@pytest.fixture
def ingest_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The increment is a property of the pipeline runner, whatever stages exist."""
    monkeypatch.setattr(stages, "REGISTRY", ["glave_tasks.stages.ingest:IngestStage"])


def test_second_night_skips_published_videos_and_reprocess_overrides(tmp_path: Path) -> None:
    """A video counts as annotated once a full run published it; later nights skip it."""
    config = make_config(tmp_path, shard_size=8)
    store = ArtifactStore(config.store.root)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=2.0)
    synthetic.static_video(inbox / "b.mp4", seconds=3.0)
    night1 = run_pipeline(store, config, str(inbox), "night-1", show_progress=False)
    assert night1["num_videos"] == 2 and not night1["failed"]
    assert night1["published"]["marked_annotated"] == 2

    synthetic.static_video(inbox / "c.mp4", seconds=2.5)
    night2 = run_pipeline(store, config, str(inbox), "night-2", show_progress=False)
    assert night2["num_videos"] == 1 and [r["file_name"] for r in videos(store, "night-2")] == ["c.mp4"]
    assert store.read_json(RunLayout("night-2").manifest)["skipped_already_annotated"] == 2

    night3 = run_pipeline(store, config, str(inbox), "night-3", show_progress=False)
    assert night3["num_videos"] == 0 and night3["outcomes"] == []

    again = run_pipeline(store, config, str(inbox), "night-4", reprocess=True, show_progress=False)
    assert again["num_videos"] == 3
    # A new pipeline version annotates everything again.
    config.run.pipeline_version = "glave-cap-2"
    assert run_pipeline(store, config, str(inbox), "night-5", show_progress=False)["num_videos"] == 3


def test_hostile_file_names_are_ingested_under_safe_keys(tmp_path: Path, ingest_only: None) -> None:
    config = make_config(tmp_path, shard_size=8)
    store = ArtifactStore(config.store.root)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hostile = ["..\\..\\évil ☃ name.mp4", "..mp4", "-x;rm -rf ~.mp4", ("long" * 60) + ".mp4", "tab\tand\nnewline.mp4"]
    for i, name in enumerate(hostile):
        synthetic.static_video(inbox / name, seconds=1.0 + 0.5 * i)
    with pytest.raises(InvalidRunId):  # a run id is never a path
        run_pipeline(store, config, str(inbox), "../../escape", show_progress=False)
    result = run_pipeline(store, config, str(inbox), "night-1", show_progress=False)
    assert result["num_videos"] == len(hostile) and not result["failed"]
    assert sorted(r["file_name"] for r in videos(store, "night-1")) == sorted(hostile)
    keys = store.list("")
    assert keys and all(is_safe_key(k) and k.split("/")[0] in ("runs", "index") for k in keys)
    run_prefix = RunLayout("night-1").prefix
    assert all(k.startswith(run_prefix + "/") for k in keys if k.startswith("runs/"))
    root = Path(config.store.root).resolve()
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not (p.resolve().is_relative_to(root)
                                                                        or p.resolve().is_relative_to(inbox.resolve())
                                                                        or "cache" in p.parts)]


def test_every_entry_not_taken_is_listed_with_its_reason(store: ArtifactStore, tmp_path: Path) -> None:
    import os

    inbox = tmp_path / "inbox"
    fill(inbox, 2)
    (inbox / "notes.txt").write_text("not an input")
    (inbox / "folder.mp4").mkdir()  # a directory named like a video
    (inbox / "folder.mp4" / "inner.mp4").write_bytes(b"inner video")
    os.symlink(inbox / "missing.mp4", inbox / "dangling.mp4")
    os.symlink(inbox / "self.mp4", inbox / "self.mp4")  # a link to itself
    os.symlink(inbox, inbox / "loop")  # a folder link back up
    os.symlink(inbox / "clip0.mp4", inbox / "alias.mp4")  # same bytes through a link: clip0 is the duplicate
    manifest = discover(store, make_config(tmp_path, max_videos=2), str(inbox), "night-1")
    reasons = {Path(n["uri"]).name: n["reason"] for n in manifest["not_taken"]}
    assert reasons == {
        "notes.txt": "not_a_video_extension", "folder.mp4": "directory_named_like_video",
        "dangling.mp4": "dangling_link", "self.mp4": "symlink_loop", "loop": "symlink_loop",
        "clip0.mp4": "duplicate", "inner.mp4": "over_max_videos",
    }
    assert all(n["detail"] for n in manifest["not_taken"])
    # Accounting: every entry seen is a video of the run or listed as not taken.
    assert manifest["entries_seen"] == manifest["num_videos"] + len(manifest["not_taken"])
    assert manifest["num_videos"] == 2


def test_shard_size_and_max_videos_must_be_positive(store: ArtifactStore, tmp_path: Path) -> None:
    from glave_tasks.errors import ConfigError

    fill(tmp_path / "inbox", 1)
    for kw in ({"shard_size": 0}, {"shard_size": -3}, {"max_videos": 0}, {"max_videos": -1}):
        with pytest.raises(ConfigError, match="at least 1"):
            discover(store, make_config(tmp_path), str(tmp_path / "inbox"), "night-1", **kw)  # type: ignore[arg-type]
    assert not store.exists(RunLayout("night-1").manifest)  # nothing planned that later runs would keep


def test_a_local_file_is_recorded_with_its_stat_while_hashed(
        store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from glave_tasks import discover as discover_module

    fill(tmp_path / "inbox", 1)
    monkeypatch.setattr(discover_module, "SETTLE_NS", 20_000_000)
    time.sleep(0.02)
    (row,) = videos(store, discover(store, make_config(tmp_path), str(tmp_path / "inbox"), "night-1")["run_id"])
    st = os.stat(tmp_path / "inbox" / "clip0.mp4")
    assert (row["size_bytes"], row["file_mtime_ns"], row["file_ctime_ns"], row["file_inode"]) == (
        st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def test_a_file_written_moments_ago_gets_no_stat_to_trust(
        store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glave_tasks import discover as discover_module

    # A write within the same timestamp tick could leave its stat unchanged: ingest hashes it again.
    monkeypatch.setattr(discover_module, "SETTLE_NS", 60_000_000_000)  # however slow this machine is today
    fill(tmp_path / "inbox", 1)
    (row,) = videos(store, discover(store, make_config(tmp_path), str(tmp_path / "inbox"), "night-1")["run_id"])
    assert row["content_hash"] and row["file_mtime_ns"] is None and row["file_ctime_ns"] is None


def test_a_file_that_changes_while_hashed_gets_no_stat_to_trust(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    from types import SimpleNamespace

    from glave_tasks import discover as discover_module

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"first part")
    monkeypatch.setattr(discover_module, "SETTLE_NS", 0)

    class GrowsTheFile:
        """SHA-256 whose first update appends to the file, as an upload still in progress would."""

        def __init__(self) -> None:
            self.digest = hashlib.sha256()
            self.grown = False

        def update(self, chunk: bytes) -> None:
            if not self.grown:
                with open(clip, "ab") as fh:
                    fh.write(b", second part")
                self.grown = True
            self.digest.update(chunk)

        def hexdigest(self) -> str:
            return self.digest.hexdigest()

    monkeypatch.setattr(discover_module, "hashlib", SimpleNamespace(sha256=GrowsTheFile))
    digest, identity = discover_module.hash_input(str(clip), make_config(tmp_path))
    assert digest and identity is None
