"""One check's outcome: a row of the ``checks`` table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .thresholds import CheckSpec


@dataclass
class CheckResult:
    check: str
    table: str
    status: str  # pass | warn | fail | skip (skip: the input carries nothing to judge)
    value: float | None
    warn_threshold: float | None
    fail_threshold: float | None
    critical: bool
    detail: str = ""

    @classmethod
    def of(cls, spec: CheckSpec, value: float | None, detail: str = "") -> CheckResult:
        return cls(spec.name, spec.table, spec.status(value), None if value is None else float(value),
                   spec.warn, spec.fail, spec.critical, detail[:2000])

    def row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def blocking(self) -> bool:
        return self.critical and self.status == "fail"
