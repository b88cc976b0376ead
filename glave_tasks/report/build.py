"""Build ``runs/<run>/report/{index.html, summary.json}`` from the run's tables and markers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from .. import schemas
from ..config import GlaveConfig
from ..keys import join_key
from ..layout import RunLayout, shard_name
from ..quality.assess import stats_of
from ..quality.record_format import frames
from ..run import Run
from ..run_records import build_records
from ..stages import available
from ..store import ArtifactStore
from . import plots

TEMPLATE = Path(__file__).with_name("template.html.j2")
TREND_KEYS = ["videos", "qa", "qa_per_video", "checks_failed", "checks_warned", "videos_failed"]


def _failures(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str]] = Counter()
    for row in errors:
        counts[(row["stage"], row["reason"])] += 1
    return [{"stage": s, "reason": r, "count": n} for (s, r), n in sorted(counts.items())]


def _build_data_docs(run: Run) -> list[str]:
    """One Great Expectations Data Docs site for the run, built once from the suites and results
    the committed validate shards stored (replacing an older site); its index, if any."""
    import json
    import tempfile

    from ..keys import is_safe_key
    from ..quality.expectations import build_data_docs
    from ..stages.validate import GX_RESULTS

    target = join_key(run.layout.report_prefix, "data_docs")
    run.store.delete_prefix(target)
    documents = []
    for shard, marker in sorted(run.commits("validate").items()):
        key = run.file_key("validate", shard, marker, GX_RESULTS)
        if run.store.exists(key):
            documents += [(shard_name(shard), d) for d in json.loads(run.read_checked("validate", shard, key, marker))]
    if not documents:
        return []
    with tempfile.TemporaryDirectory(prefix="glave-gx-") as docs:
        build_data_docs(documents, docs)
        for path in sorted(Path(docs).rglob("*")):
            rel = path.relative_to(docs).as_posix()
            if path.is_file() and is_safe_key(rel):  # GX names its files; anything odd stays out of the store
                run.store.write_bytes(join_key(target, *rel.split("/")), path.read_bytes())
    return ["data_docs/index.html"]


TREND_RUNS = 30  # runs shown in the trend (this one and the ones before it)
TREND_KEY = "reports/trend.json"  # the last TREND_RUNS runs' headline rows, kept by each report


def _trend_rows(store: ArtifactStore, run_id: str, current: dict[str, Any]) -> list[dict[str, Any]]:
    """This run's headline numbers beside those of the runs before it (at most ``TREND_RUNS``).

    One small file holds the rows, so a report reads one object however many nights the store
    has seen; a store without it (older reports) is scanned once for report summaries."""
    if store.exists(TREND_KEY):
        rows = [r for r in store.read_json(TREND_KEY) if r.get("run_id") != run_id]
    else:
        rows = []
        for other in store.list_dirs("runs"):
            if other == RunLayout(run_id).run_segment:
                continue
            key = join_key(RunLayout(other).report_prefix, "summary.json")
            if store.exists(key):
                summary = store.read_json(key)
                rows.append({"run_id": summary.get("run_id", other), "created_at": summary.get("created_at", ""),
                             **{k: summary.get("headline", {}).get(k) for k in TREND_KEYS}})
    rows.sort(key=lambda r: (r["created_at"] or "", r["run_id"]))
    rows = rows[-(TREND_RUNS - 1):]
    rows.append({"run_id": run_id, "created_at": current["created_at"], **{k: current["headline"].get(k) for k in TREND_KEYS}})
    store.write_json(TREND_KEY, rows)
    return rows


def _evaluation_section(store: ArtifactStore, run_id: str, summary: dict[str, Any]) -> str:
    """``glave evaluate`` results stored with the run (none: no section)."""
    from ..evaluation.pipeline import evaluations_of
    from .evaluation import evaluation_sections

    evaluations = evaluations_of(store, run_id)
    summary["evaluation"] = {e["name"]: {"accuracy": e["scores"]["accuracy"], "e_rate": e["scores"]["e_rate"],
                                         "judge": e["judge"]["label"]} for e in evaluations}
    return evaluation_sections(evaluations)


def build_report(store: ArtifactStore, config: GlaveConfig, run_id: str) -> dict[str, Any]:
    layout = RunLayout(run_id)
    run = Run(store, run_id)
    tables = run.tables()
    records = build_records(tables, sorted(run.videos_ok("qa")))
    errors = [row for stage in available() for row in run.errors(stage).to_pylist()]
    stats = stats_of(frames(records))
    checks = tables["checks"].to_pylist()
    status = run.status()
    failures = _failures(errors)
    shard_states = [{"stage": stage, "shard": r["shard"], "state": r["state"],
                     "detail": r.get("detail") or r.get("reason") or (f"ok {r['videos_ok']}/{r['videos_in']}" if r["state"] == "committed" else "")}
                    for stage, info in status["stages"].items() for r in info["shards"]]
    blocking = sorted({c["check"] for c in checks if c["critical"] and c["status"] == "fail"})
    now = datetime.now(UTC).isoformat()
    headline = {
        "videos": stats["videos"], "qa": stats["qa"], "scenes": stats["scenes"], "keyframes": stats["keyframes"],
        "qa_per_video": round(stats["qa"] / stats["videos"], 2) if stats["videos"] else 0,
        "checks_failed": sum(c["status"] == "fail" for c in checks), "checks_warned": sum(c["status"] == "warn" for c in checks),
        "videos_failed": len({r["video_id"] for r in errors}),
    }
    summary = {"glave_side_file": "report summary",  # never taken for a record by glave audit
               "run_id": run_id, "created_at": now, "pipeline_version": config.run.pipeline_version,
               "videos_in_run": run.num_videos, "headline": headline, "stats": {k: v for k, v in stats.items() if k != "caption_chars"},
               "checks": checks, "blocking": blocking, "failures": failures, "shard_states": shard_states}
    trend_rows = _trend_rows(store, run_id, summary)
    summary["trend"] = trend_rows
    data_docs = _build_data_docs(run)
    failure_counts = {f"{f['stage']}: {f['reason']}": f["count"] for f in failures} or {"no failures": 0}
    rendered = {
        "caption_lengths": plots.histograms({k: v for k, v in stats["caption_chars"].items()}, "Caption length by stream"),
        "qa_dimensions": plots.bars({d: stats["qa_per_dimension"].get(d, 0) for d in schemas.ALL_DIMENSIONS}, "QA per dimension", "QA"),
        "failures": plots.bars(failure_counts, "Failed videos by stage and reason", "videos"),
        "trends": plots.trend([r["run_id"] for r in trend_rows], {k: [r.get(k) for r in trend_rows] for k in ("videos", "qa", "checks_failed")},
                              "Runs in this store"),
    }
    for c in checks:
        c["value_text"] = "" if c["value"] is None else f"{c['value']:.4g}"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = env.from_string(TEMPLATE.read_text()).render(
        run_id=run_id, store=store.root, pipeline_version=config.run.pipeline_version, generated_at=now,
        kpis={k: headline[k] for k in ("videos", "keyframes", "scenes", "qa", "checks_failed", "videos_failed")},
        blocking=blocking, plots=rendered, checks=checks, data_docs=data_docs, failures=failures,
        shard_states=shard_states, trend_rows=trend_rows, trend_keys=TREND_KEYS,
        evaluation=_evaluation_section(store, run_id, summary))
    html_key = join_key(layout.report_prefix, "index.html")
    store.write_bytes(html_key, html.encode())
    store.write_json(join_key(layout.report_prefix, "summary.json"), summary)
    return {"run_id": run_id, "html": store.uri(html_key), "summary": store.uri(join_key(layout.report_prefix, "summary.json")),
            "data_docs": data_docs, "blocking": blocking, "headline": headline}
