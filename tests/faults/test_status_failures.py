"""`glave status` never prints "failures: none" beside a shard that did not commit: a crashed,
infrastructure-failed, terminated or failure-ratio shard shows its reason (and detail) in the
failures column, any state a row carries is printed with its reason generically, and the legend
explains every letter it prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from glave_tasks.cli import main
from glave_tasks.stages.ingest import IngestStage
from glave_tasks.status import format_status
from tests.support import synthetic

from .conftest import Ledger

pytestmark = pytest.mark.faults


def test_a_crashed_shard_shows_in_the_failures_column(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, ledger: Ledger) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synthetic.static_video(inbox / "a.mp4", seconds=2.0)
    store = str(tmp_path / "store")
    assert main(["discover", "--input", str(inbox), "--run-id", "st", "--store", store]) == 0

    def crash(self: Any, ctx: Any) -> None:
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(IngestStage, "process", crash)
    ledger.inject("crashed_shard")
    assert main(["stage", "ingest", "--run-id", "st", "--shard", "0", "--store", store]) != 0
    capsys.readouterr()
    assert main(["status", "--run-id", "st", "--store", store]) == 0
    out = capsys.readouterr().out
    ingest = next(line for line in out.splitlines() if line.strip().startswith("ingest"))
    assert "failures: none" not in ingest, out
    assert "shard 0 failed: crashed" in ingest and "decoder exploded" in ingest
    assert "[0:F]" in ingest and "F failed" in out
    ledger.survive("crashed_shard")


def _status(rows: list[dict[str, Any]], failures: dict[str, int] | None = None) -> dict[str, Any]:
    return {"run_id": "r", "num_videos": 4, "shards": [r["shard"] for r in rows], "store": "/s", "stages": {
        "ingest": {"shards": rows, "failures": failures or {}, "committed": sum(r["state"] == "committed" for r in rows)}}}


@pytest.mark.parametrize("reason", ["crashed", "infrastructure", "terminated", "failure_ratio"])
def test_every_failure_reason_is_shown(reason: str) -> None:
    text = format_status(_status([{"shard": 0, "state": "failed", "reason": reason, "detail": "why\nit failed"}]))
    assert f"shard 0 failed: {reason} (why it failed)" in text and "failures: none" not in text


def test_any_state_prints_generically_and_the_legend_covers_it() -> None:
    rows = [
        {"shard": 0, "state": "committed", "videos_in": 2, "videos_ok": 1, "videos_failed": 1},
        {"shard": 1, "state": "corrupt", "reason": "corrupt", "detail": "probes.parquet: checksum differs"},
        {"shard": 2, "state": "torn", "reason": "torn_marker", "detail": "_COMMIT.json is not JSON"},
        {"shard": 3, "state": "missing"},
        {"shard": 4, "state": "quarantined", "reason": "operator", "detail": "held back by hand"},
    ]
    text = format_status(_status(rows, {"corrupt": 1, "torn_marker": 1, "not_a_video": 1}))
    line = next(line for line in text.splitlines() if line.strip().startswith("ingest"))
    assert "shard 1 corrupt: corrupt (probes.parquet: checksum differs)" in line
    assert "shard 2 torn: torn_marker (_COMMIT.json is not JSON)" in line
    assert "shard 4 quarantined: operator (held back by hand)" in line
    assert "not_a_video=1" in line
    letters = re.search(r"\[(.*?)\]", line)
    assert letters is not None
    printed = {cell.split(":")[1] for cell in letters.group(1).split()}
    legend = text.splitlines()[-1]
    # One letter per state, never two states with one letter, each one explained.
    assert len(printed) == 5
    for letter in printed:
        assert re.search(rf"\b{letter} \w", legend), (letter, legend)
