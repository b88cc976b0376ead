"""Dataset export: one JSON per video in the GLaVE-1.2M sample format, Parquet tables and a
dataset card, written under any store URI (local folder or s3://)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import __version__, schemas
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
    generators = record_generators(tables)
    for rec in records:
        # Beside the GLaVE-1.2M keys: which engine and model wrote this record, with which prompts.
        rec.data["generator"] = generators.get(rec.video_id, {})
    out = open_store(out_uri, config.store.s3, config.store.local_cache)
    for rec in records:
        out.write_bytes(f"json/{safe_segment(rec.video_id)}.json", json.dumps(rec.data, ensure_ascii=False, indent=1).encode())
    counts: dict[str, int] = {}
    for name, source in EXPORT_TABLES.items():
        table = _only(tables[source], [r.video_id for r in records])
        table = table.drop_columns(list(schemas.UNPUBLISHED_COLUMNS.get(source, ())))
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
        "name": "glave", "run_id": run_id, "created_at": datetime.now(UTC).isoformat(),
        "pipeline_version": config.run.pipeline_version, "code_version": __version__,
        "dataset_purpose": config.run.dataset_purpose,
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


GENERATED_TABLES = ("overviews", "local_captions", "scenes", "video_captions", "qa")


def record_generators(tables: dict[str, pa.Table]) -> dict[str, dict[str, Any]]:
    """Per video: the engine(s), model id(s) and revision(s), and the prompt versions that wrote
    its captions, scenes and QA (from the rows' provenance columns)."""
    makers: dict[str, set[tuple[str, str, str]]] = {}
    versions: dict[str, dict[str, str]] = {}
    for name in GENERATED_TABLES:
        table = tables.get(name)
        if table is None or not table.num_rows:
            continue
        cols = table.select(["video_id", "generator", "model_id", "model_revision", "prompt_version"]).to_pylist()
        for r in cols:
            makers.setdefault(r["video_id"], set()).add((r["generator"], r["model_id"] or "", r["model_revision"] or ""))
            for v in (r["prompt_version"] or "").split("+"):
                if "@" in v:
                    versions.setdefault(r["video_id"], {})[v.split("@", 1)[0]] = v
    out: dict[str, dict[str, Any]] = {}
    for vid, found in makers.items():
        engines = sorted(found)
        first = engines[0]
        out[vid] = {"engine": first[0], "model_id": first[1] or None, "model_revision": first[2] or None,
                    "prompt_versions": dict(sorted(versions.get(vid, {}).items()))}
        if len(engines) > 1:  # e.g. a re-run with another model for one stage: say so, all of them
            out[vid]["engines"] = [{"engine": e, "model_id": m or None, "model_revision": r or None}
                                   for e, m, r in engines]
    return out


def _card_markdown(card: dict[str, Any]) -> str:
    lines = [f"# glave dataset, run {card['run_id']}", "",
             f"Pipeline {card['pipeline_version']} (code {card['code_version']}), exported {card['created_at']}.",
             f"Purpose: {card['dataset_purpose']} dataset.", "",
             "| what | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card["counts"].items()]
    lines += ["", f"QA generators: {', '.join(card['qa_generators']) or 'none'}", "", "Prompt versions:"]
    lines += [f"- {k}: {v}" for k, v in card["prompt_versions"].items()]
    lines += ["", "Models per stage:"] + [f"- {k}: {json.dumps(v, sort_keys=True)}" for k, v in card["models"].items()]
    return "\n".join(lines) + "\n"
