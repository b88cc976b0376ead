"""Run every quality check over a set of GLaVE records (and, for a run, its raw tables)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import schemas
from ..config import GlaveConfig
from . import expectations, semantic
from .record_format import Record
from .record_format import frames as record_frames
from .results import CheckResult
from .thresholds import resolve, table_spec


@dataclass
class Assessment:
    checks: list[CheckResult]
    stats: dict[str, Any] = field(default_factory=dict)
    documents: list[dict[str, Any]] = field(default_factory=list)  # GX suites + results, for Data Docs

    @property
    def blocking(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    def to_json(self) -> dict[str, Any]:
        return {"checks": [c.row() for c in self.checks], "stats": self.stats,
                "blocking": [c.check for c in self.blocking],
                "status_counts": dict(Counter(c.status for c in self.checks))}


def stats_of(frames: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Counts the report and the export round trip compare: videos, keyframes, scenes, QA."""
    qa = frames["qa"]
    return {
        "videos": len(frames["videos"]),
        "keyframes": sum(v["n_keyframes"] for v in frames["videos"]),
        "scenes": len(frames["scenes"]),
        "qa": len(qa),
        "qa_scene": sum(q["scope"] != "general" for q in qa),
        "qa_general": sum(q["scope"] == "general" for q in qa),
        "qa_per_dimension": dict(sorted(Counter(str(q["dimension"]) for q in qa).items())),
        "caption_chars": {kind: [c["chars"] for c in frames["captions"] if c["kind"] == kind]
                          for kind in ("different", "attention", "merged", "overview_caption", "scene", "caption")},
    }


def embedding_texts(records: list[Record], config: GlaveConfig) -> dict[str, dict[str, list[str]]]:
    """Per video, per embedding model: every text the checks of :func:`assess` and the validate
    stage's self-consistency gate embed for it (the QA stage stores their vectors)."""
    from ..evaluation.gate import embedding_texts as gate_texts

    out: dict[str, dict[str, list[str]]] = {}
    model = config.qa.embedding_model
    for vid, texts in semantic.embedding_texts(record_frames(records)).items():
        out.setdefault(vid, {}).setdefault(model, []).extend(texts)
    for vid, per_model in gate_texts(records, config).items():
        for m, texts in per_model.items():
            out.setdefault(vid, {}).setdefault(m, []).extend(texts)
    return {vid: {m: list(dict.fromkeys(t)) for m, t in per_model.items()} for vid, per_model in out.items()}


def assess(records: list[Record], config: GlaveConfig, *, tables: dict[str, pa.Table] | None = None,
           track_ids: dict[str, set[int]] | None = None, labels: dict[str, set[str]] | None = None,
           docs_dir: str | Path | None = None) -> Assessment:
    specs = resolve(config.validate_)
    frames = record_frames(records)
    plans = expectations.record_plans(frames, config.validate_.caption_min_chars, config.validate_.caption_max_chars)
    for name, table in sorted((tables or {}).items()):
        plans.append(expectations.table_plan(name, table))
    outcome = expectations.run_suites(plans, docs_dir)
    checks: list[CheckResult] = []
    for name, value in outcome.values.items():
        spec = specs.get(name) or table_spec(name.split(".", 1)[1])
        checks.append(CheckResult.of(spec, value, " | ".join(outcome.details.get(name, [])) or "all expectations met"))
    dims = {q["dimension"] for q in frames["qa"]} & set(schemas.ALL_DIMENSIONS)
    checks.append(CheckResult.of(specs["qa.dimension_coverage"], len(dims) / len(schemas.ALL_DIMENSIONS) if frames["qa"] else None,
                                 f"{len(dims)} of {len(schemas.ALL_DIMENSIONS)} dimensions: {', '.join(sorted(dims))}"))
    checks += semantic.run(frames, specs, model=config.qa.embedding_model, near_threshold=config.qa.near_duplicate_similarity,
                           track_ids=track_ids, labels=labels)
    stats = stats_of(frames)
    stats["expectations_evaluated"] = outcome.evaluated
    return Assessment(checks, stats, outcome.documents)
