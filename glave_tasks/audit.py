"""``glave audit``: the quality checks over GLaVE-1.2M JSON files, folders, or a run's tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import GlaveConfig
from .errors import GlaveError
from .quality.assess import Assessment, assess
from .quality.record_format import scan_paths
from .run import Run
from .run_records import build_records, tracker_facts
from .store import ArtifactStore


def audit_targets(targets: list[str], config: GlaveConfig, store: ArtifactStore | None,
                  docs_dir: str | None = None) -> Assessment:
    """Each target is a JSON file, a folder of them, or (when no such path exists) a run id."""
    from .quality.record_format import Record

    records: list[Record] = []
    not_taken: list[dict[str, str]] = []
    track_ids: dict[str, set[int]] | None = None
    labels: dict[str, set[str]] | None = None
    for t in targets:
        if Path(t).exists():
            found, skipped = scan_paths([t])
            records += found
            not_taken += skipped
        elif store is not None:
            run = Run(store, t)
            tables = run.tables()
            records += build_records(tables, sorted(run.videos_ok("qa")))
            ids, labs = tracker_facts(tables)
            track_ids = {**(track_ids or {}), **ids}
            labels = {**(labels or {}), **labs}
        else:
            raise GlaveError(f"{t}: no such file or folder")
    if not records:
        why = "; ".join(f"{s['path']}: {s['reason']} ({s['detail']})" for s in not_taken[:5])
        raise GlaveError(f"no GLaVE records found in {', '.join(targets)}" + (f": {why}" if why else ""))
    result = assess(records, config, track_ids=track_ids, labels=labels, docs_dir=docs_dir)
    # Every file looked at is accounted for: read as records, or listed here with the reason.
    result.stats["files_not_taken"] = not_taken
    result.stats["records_read"] = len(records)
    return result


def audit_html(result: Assessment, title: str) -> str:
    """A small self-contained HTML page of the audit (no external assets)."""
    from html import escape

    rows = "".join(
        f"<tr class='{c.status}'><td>{escape(c.check)}</td><td>{c.status}</td><td>{'' if c.value is None else f'{c.value:.3f}'}</td>"
        f"<td>{'yes' if c.critical else ''}</td><td>{escape(c.detail)}</td></tr>" for c in result.checks)
    stats = escape(json.dumps({k: v for k, v in result.stats.items() if k != "caption_chars"}, indent=1))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em}td{border-bottom:1px solid #ddd;padding:4px;vertical-align:top}"
            ".fail{background:#fdd}.warn{background:#ffd}</style></head><body>"
            f"<h1>{escape(title)}</h1><pre>{stats}</pre><table><tr><th>check</th><th>status</th><th>value</th>"
            f"<th>critical</th><th>detail</th></tr>{rows}</table></body></html>")


def summary(result: Assessment) -> dict[str, Any]:
    return result.to_json()
