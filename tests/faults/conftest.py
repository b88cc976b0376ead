"""The fault-injection suite: every test here is marked ``faults`` and reports what it injected
and what survived into one ledger, printed at the end of the session (and written as JSON to
``$GLAVE_FAULTS_LEDGER`` when set)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LEDGER: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


class Ledger:
    """Counts for one test: ``inject(kind)``, ``survive(kind)``, ``tried(n)``, ``accounted(n)``,
    ``lost(n)``, ``duplicated(n)``."""

    def __init__(self, name: str) -> None:
        self.row = LEDGER[name]

    def inject(self, kind: str, n: int = 1) -> None:
        self.row[f"injected.{kind}"] += n

    def survive(self, kind: str, n: int = 1) -> None:
        self.row[f"survived.{kind}"] += n

    def count(self, what: str, n: int) -> None:
        self.row[what] += n


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    yield Ledger(request.node.nodeid.split("::")[-1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


def totals() -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for row in LEDGER.values():
        for k, v in row.items():
            out[k.split(".")[0] if k.startswith(("injected.", "survived.")) else k] += v
    return dict(out)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not LEDGER:
        return
    tr = terminalreporter
    tr.section("fault injection ledger")
    for name, row in sorted(LEDGER.items()):
        tr.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in sorted(row.items())))
    tr.write_line("TOTAL: " + ", ".join(f"{k}={v}" for k, v in sorted(totals().items())))
    out = os.environ.get("GLAVE_FAULTS_LEDGER")
    if out:
        Path(out).write_text(json.dumps({"tests": LEDGER, "totals": totals()}, indent=1, sort_keys=True))
