"""Evaluation results as MLflow metrics and tags on the pipeline run (``glave mlflow-log``).

Metric keys: ``eval.<question set>.accuracy``, ``.e_rate``, ``.vote_accuracy``, ``.questions``,
``.unparsable``, ``.skipped``, ``.dim.<dimension>.accuracy``; when a baseline was compared,
``.delta_vs_baseline``. Tags name the judge, so an embedded judge's numbers are never mistaken
for an LLM judge's.
"""

from __future__ import annotations

from typing import Any

from ..store import ArtifactStore
from .pipeline import evaluations_of


def metrics_and_tags(store: ArtifactStore, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for s in evaluations_of(store, run_id):
        p = f"eval.{s['name']}"
        sc: dict[str, Any] = s["scores"]
        for k in ("accuracy", "e_rate", "vote_accuracy", "questions", "unparsable", "ties"):
            if sc.get(k) is not None:
                metrics[f"{p}.{k}"] = float(sc[k])
        metrics[f"{p}.skipped"] = float(s["skipped"]["total"])
        for dim, d in sc["per_dimension"].items():
            if d["accuracy"] is not None:
                metrics[f"{p}.dim.{dim}.accuracy"] = float(d["accuracy"])
        cmp = s.get("comparison")
        if cmp and cmp.get("delta") is not None:
            metrics[f"{p}.delta_vs_baseline"] = float(cmp["delta"])
            tags[f"glave.{p}.baseline"] = str(cmp["baseline_run_id"])
        tags[f"glave.{p}.judge"] = s["judge"]["label"][:5000]
        tags[f"glave.{p}.judge_backend"] = s["judge"]["backend"]
    return metrics, tags
