"""Dataset export: one JSON per video in the GLaVE-1.2M sample format, Parquet tables and a
dataset card, written under any store URI (local folder or s3://)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import __version__
from .config import GlaveConfig
from .keys import safe_segment
from .run import Run
from .run_records import build_records
from .stages import available
from .store import ArtifactStore, open_store

EXPORT_TABLES = {"videos": "videos", "keyframes": "keyframes", "tracks": "tracks", "captions": "local_captions",
                 "scenes": "scenes", "qa": "qa"}


def _only(table: pa.Table, ids: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table["video_id"], value_set=pa.array(ids, pa.string())))


def export_run(store: ArtifactStore, config: GlaveConfig, run_id: str, out_uri: str) -> dict[str, Any]:
    """Export the videos that completed QA; returns the dataset card (also written as JSON)."""
    run = Run(store, run_id)
    tables = run.tables()
    ids = sorted(run.videos_ok("qa"))
    records = build_records(tables, ids)
    out = open_store(out_uri, config.store.s3, config.store.local_cache)
    for rec in records:
        out.write_bytes(f"json/{safe_segment(rec.video_id)}.json", json.dumps(rec.data, ensure_ascii=False, indent=1).encode())
    counts: dict[str, int] = {}
    for name, source in EXPORT_TABLES.items():
        table = _only(tables[source], [r.video_id for r in records])
        out.write_table(f"parquet/{name}.parquet", table)
        counts[name] = table.num_rows
    models: dict[str, Any] = {}
    prompts: dict[str, str] = {}
    for stage in available():
        for marker in run.commits(stage).values():
            if marker.get("models"):
                models[stage] = marker["models"]
            prompts.update(marker.get("prompts") or {})
    qa = tables["qa"]
    card = {
        "glave_side_file": "dataset card",  # never taken for a record by glave audit
        "name": "glave", "run_id": run_id, "created_at": datetime.now(timezone.utc).isoformat(),
        "pipeline_version": config.run.pipeline_version, "code_version": __version__,
        "format": "GLaVE-1.2M sample format: one JSON per video (json/<video_id>.json)",
        "counts": {"videos": len(records), "keyframes": counts["keyframes"], "scenes": counts["scenes"],
                   "qa": counts["qa"], "tracks": counts["tracks"], "captions": counts["captions"]},
        "videos_in_run": run.num_videos, "videos_excluded": run.num_videos - len(records),
        "qa_generators": sorted(set(_only(qa, ids)["generator"].to_pylist())) if qa.num_rows else [],
        "models": models, "prompt_versions": dict(sorted(prompts.items())),
        "tables": {name: f"parquet/{name}.parquet" for name in EXPORT_TABLES},
    }
    out.write_json("dataset_card.json", card)
    out.write_bytes("README.md", _card_markdown(card).encode())
    return card


def _card_markdown(card: dict[str, Any]) -> str:
    lines = [f"# glave dataset, run {card['run_id']}", "",
             f"Pipeline {card['pipeline_version']} (code {card['code_version']}), exported {card['created_at']}.", "",
             "| what | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["counts"].items()]
    lines += ["", f"QA generators: {', '.join(card['qa_generators']) or 'none'}", "", "Prompt versions:"]
    lines += [f"- {k}: {v}" for k, v in card["prompt_versions"].items()]
    lines += ["", "Models per stage:"] + [f"- {k}: {json.dumps(v, sort_keys=True)}" for k, v in card["models"].items()]
    return "\n".join(lines) + "\n"
