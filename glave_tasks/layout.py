"""Where every artifact of a run lives in the store.

    runs/<run_id>/manifest.json                      shard plan (written by discover)
    runs/<run_id>/manifest/videos.parquet            the run's videos and their shards
    runs/<run_id>/<stage>/shard-<k>/<attempt>/<table>.parquet  stage outputs of one attempt
    runs/<run_id>/<stage>/shard-<k>/<attempt>/errors.parquet   per-video failures of that stage
    runs/<run_id>/<stage>/shard-<k>/<attempt>/files/...        frames, marked frames, other blobs
    runs/<run_id>/<stage>/shard-<k>/_COMMIT.json     written last; names the attempt it makes visible,
                                                     with every artifact's size and checksum
    runs/<run_id>/<stage>/shard-<k>/_FAILED.json     why the last attempt did not commit
    runs/<run_id>/<stage>/shard-<k>/_CORRUPT.json    a reader found a committed artifact damaged
    runs/<run_id>/report/...                         quality report (HTML, JSON, Data Docs)
    index/<pipeline_version>/<id[:2]>/<video_id>.json  videos already annotated by this version
"""

from __future__ import annotations

from dataclasses import dataclass

from .keys import join_key, safe_segment, validate_run_id

COMMIT = "_COMMIT.json"
FAILED = "_FAILED.json"
CORRUPT = "_CORRUPT.json"
ATTEMPT_PREFIX = "attempt-"


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


@dataclass(frozen=True)
class RunLayout:
    run_id: str

    def __post_init__(self) -> None:
        # Every path of a run starts here: an id outside the charset never reaches the store.
        validate_run_id(self.run_id)

    @property
    def run_segment(self) -> str:
        return self.run_id

    @property
    def prefix(self) -> str:
        return join_key("runs", self.run_segment)

    @property
    def manifest(self) -> str:
        return join_key(self.prefix, "manifest.json")

    @property
    def videos_table(self) -> str:
        return join_key(self.prefix, "manifest", "videos.parquet")

    def stage_prefix(self, stage: str) -> str:
        return join_key(self.prefix, safe_segment(stage))

    def shard_prefix(self, stage: str, shard: int) -> str:
        return join_key(self.stage_prefix(stage), shard_name(shard))

    def attempt_prefix(self, stage: str, shard: int, attempt: str | None) -> str:
        """Where one attempt writes. Each attempt has a folder of its own, made visible only by the
        commit marker that names it, so no attempt can touch another's committed files. Shards
        committed before attempts existed (no attempt) keep their files at the shard's top."""
        base = self.shard_prefix(stage, shard)
        return join_key(base, safe_segment(attempt)) if attempt else base

    def table(self, stage: str, shard: int, table: str, attempt: str | None = None) -> str:
        return join_key(self.attempt_prefix(stage, shard, attempt), f"{safe_segment(table)}.parquet")

    def commit(self, stage: str, shard: int) -> str:
        return join_key(self.shard_prefix(stage, shard), COMMIT)

    def failed(self, stage: str, shard: int) -> str:
        return join_key(self.shard_prefix(stage, shard), FAILED)

    def corrupt(self, stage: str, shard: int) -> str:
        return join_key(self.shard_prefix(stage, shard), CORRUPT)

    def file(self, stage: str, shard: int, *parts: str, attempt: str | None = None) -> str:
        return join_key(self.attempt_prefix(stage, shard, attempt), "files", *(safe_segment(p) for p in parts))

    @property
    def report_prefix(self) -> str:
        return join_key(self.prefix, "report")


def index_key(pipeline_version: str, video_id: str) -> str:
    vid = safe_segment(video_id)
    return join_key("index", safe_segment(pipeline_version), vid[:2], f"{vid}.json")
