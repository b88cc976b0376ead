"""Where the captions under evaluation come from: a run in the store, an exported dataset, or a
folder (local or s3://) of GLaVE-1.2M records.

Benchmark files are named after the source video (a YouTube id), runs after content hashes, so
each video is also reachable by its input file's stem (the run's ``videos`` table, or an
export's ``parquet/videos.parquet``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..config import S3Options
from ..errors import GlaveError
from ..quality.record_format import Record, read_record_file
from ..store import ArtifactStore

# Names of the side files exports and reports write beside records. Content decides first (a
# record is a record whatever its name); the name only explains a non-record written before
# side files said what they are.
SIDE_FILES = {"dataset_card.json", "summary.json"}


@dataclass
class CaptionSource:
    description: str
    run_id: str | None
    records: dict[str, Record]  # video id -> record
    aliases: dict[str, str] = field(default_factory=dict)  # input file stem -> video id
    # Every file looked at and not read as records: {path, reason, detail} (see scan_paths).
    not_taken: list[dict[str, str]] = field(default_factory=list)

    def find(self, video_id: str) -> Record | None:
        """The record of a question's video, by video id or by input file stem."""
        rec = self.records.get(video_id)
        if rec is None and video_id in self.aliases:
            rec = self.records.get(self.aliases[video_id])
        return rec

    def caption(self, video_id: str) -> str:
        rec = self.find(video_id)
        text = rec.data.get("caption") if rec is not None else None
        return text if isinstance(text, str) else ""


def _stem_aliases(rows: list[dict[str, object]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in rows:
        name, vid = r.get("file_name"), r.get("video_id")
        if isinstance(name, str) and isinstance(vid, str):
            out.setdefault(PurePosixPath(name).stem, vid)
    return out


def from_run(store: ArtifactStore, run_id: str) -> CaptionSource:
    """Records of the run's videos that completed QA (the ones an export would publish)."""
    from ..run import Run
    from ..run_records import build_records

    run = Run(store, run_id)
    tables = run.tables()
    records = build_records(tables, sorted(run.videos_ok("qa")))
    if not records:
        raise GlaveError(f"run {run_id!r} has no video with a caption and QA to evaluate")
    return CaptionSource(f"run {run_id} in {store.root}", run_id, {r.video_id: r for r in records},
                         _stem_aliases(tables["videos"].to_pylist()))


def from_path(uri: str, s3: S3Options | None = None) -> CaptionSource:
    """Records under a local file/folder or an s3:// prefix: an exported dataset (``json/*.json``
    plus ``parquet/videos.parquet``) or any folder of GLaVE-1.2M JSON files."""
    from ..store import filesystem_for

    fs, base = filesystem_for(uri, s3)
    if not fs.exists(base):
        raise GlaveError(f"records {uri}: no such file or folder")
    paths = [base] if fs.isfile(base) else sorted(p for p in fs.find(base) if p.endswith(".json"))
    records: dict[str, Record] = {}
    not_taken: list[dict[str, str]] = []
    for p in paths:
        where = f"s3://{p}" if uri.startswith("s3://") else p  # as the user would name it
        try:
            data = fs.cat_file(p)
        except OSError as exc:
            not_taken.append({"path": where, "reason": "unreadable", "detail": f"cannot be read ({exc})"[:300]})
            continue
        found, why = read_record_file(data, PurePosixPath(p).stem, where)
        if why is not None and why["reason"] == "not_a_record" and PurePosixPath(p).name in SIDE_FILES:
            why = {**why, "reason": "side_file", "detail": f"named like an export's side file and not a record ({why['detail']})"[:300]}
        if why is not None:
            not_taken.append(why)
        for rec in found:
            if rec.video_id in records:
                not_taken.append({"path": where, "reason": "duplicate_video",
                                  "detail": f"video {rec.video_id!r} was already read from {records[rec.video_id].source}"})
                continue
            records[rec.video_id] = rec
    if not records:
        why_none = "; ".join(f"{n['path']}: {n['reason']} ({n['detail']})" for n in not_taken[:5])
        raise GlaveError(f"records {uri}: no GLaVE JSON records found" + (f": {why_none}" if why_none else ""))
    aliases: dict[str, str] = {}
    videos = f"{base}/parquet/videos.parquet"
    if fs.isdir(base) and fs.exists(videos):
        import pyarrow.parquet as pq

        aliases = _stem_aliases(pq.read_table(io.BytesIO(fs.cat_file(videos))).to_pylist())
    shown = uri if "://" in uri else str(Path(uri))
    return CaptionSource(f"records {shown}", None, records, aliases, not_taken)
