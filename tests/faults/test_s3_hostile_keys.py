"""Hostile S3 keys under the input prefix (dot segments, empty segments, keys that are also
prefixes of other keys, folder markers with or without bytes) never drop out of discover's
accounting: every object it is given is either a video of the run or listed as not taken, once,
with a reason. Keys that a path-normalising client or proxy could read as another object are
refused (``unsafe_key``), never hashed or handed to ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from glave_tasks.discover import discover
from glave_tasks.layout import RunLayout
from glave_tasks.store import ArtifactStore
from tests.support import make_config

from .conftest import Ledger

pytestmark = pytest.mark.faults

GOOD = {"inbox/ok.mp4": b"video one", "inbox/day/two.mp4": b"video two", "inbox/sp ace#1.mp4": b"video three"}
HOSTILE = {  # key -> reason it must be listed with
    "inbox/a.mp4/..": "unsafe_key",
    "inbox/..": "unsafe_key",
    "inbox/x/..": "unsafe_key",  # also a prefix of the next key: a listing of folders hides it
    "inbox/x/../y.mp4": "unsafe_key",
    "inbox/.": "unsafe_key",
    "inbox/./z.mp4": "unsafe_key",
    "inbox//double.mp4": "unsafe_key",
    "inbox/dot.mp4/.": "unsafe_key",
    "inbox/full/": "unsafe_key",  # ends in '/' but holds bytes: not a console's folder marker
    "inbox/day/": "folder_marker",
    "inbox/": "folder_marker",  # the input prefix's own marker
    "inbox/notes.txt": "not_a_video_extension",
}


def test_every_s3_object_is_taken_or_listed_with_a_reason(s3_endpoint: str, s3_bucket: str, tmp_path: Path,
                                                          ledger: Ledger) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for key, body in GOOD.items():
        s3.put_object(Bucket=s3_bucket, Key=key, Body=body)
    for key in HOSTILE:
        s3.put_object(Bucket=s3_bucket, Key=key, Body=b"" if HOSTILE[key] == "folder_marker" else b"hostile bytes")
    listed = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
              for o in page.get("Contents", [])}
    assert listed == set(GOOD) | set(HOSTILE)  # the endpoint kept every key as written
    ledger.inject("hostile_s3_key", len(HOSTILE))

    config = make_config(tmp_path)
    config.store.s3.endpoint_url = s3_endpoint
    store = ArtifactStore(str(tmp_path / "store"))
    manifest = discover(store, config, f"s3://{s3_bucket}/inbox", "keys")
    taken = {r["source_uri"] for r in store.read_table(RunLayout("keys").videos_table).to_pylist()}
    by_uri: dict[str, list[str]] = {}
    for n in manifest["not_taken"]:
        by_uri.setdefault(n["uri"], []).append(n["reason"])
        assert n["detail"]
    objects = {f"s3://{s3_bucket}/{k}" for k in listed}
    # Each object once: taken, or listed with its reason.
    assert manifest["num_videos"] == len(GOOD)
    for key, reason in HOSTILE.items():
        assert by_uri.get(f"s3://{s3_bucket}/{key}") == [reason], key
    unaccounted = {u for u in objects if u not in by_uri and u not in taken}
    assert not unaccounted and not (taken & set(by_uri))
    assert manifest["entries_seen"] == manifest["num_videos"] + len(manifest["not_taken"])
    ledger.count("inputs_tried", len(objects))
    ledger.count("inputs_accounted", len(objects) - len(unaccounted))
    ledger.survive("hostile_s3_key", sum(by_uri.get(f"s3://{s3_bucket}/{k}") == [r] for k, r in HOSTILE.items()))
