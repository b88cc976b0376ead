"""Validation leaves nothing behind in the temp folder: Data Docs are built only where asked."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest

from glave_tasks.quality.expectations import SuitePlan, run_suites


def test_data_docs_build_leaves_no_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import great_expectations.expectations as gxe

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    plan = SuitePlan("table_x", pd.DataFrame({"a": [1, None, 3]}),
                     [gxe.ExpectColumnValuesToNotBeNull(column="a", meta={"check": "nulls"})])
    docs = tmp_path / "docs"
    outcome = run_suites([plan], docs_dir=docs)
    assert outcome.evaluated == 1 and outcome.values["nulls"] > 0
    assert (docs / "index.html").is_file()
    assert list(scratch.iterdir()) == []
