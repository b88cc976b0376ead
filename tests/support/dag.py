"""Load the glave_nightly DAG file the way Airflow does (by path), under chosen settings."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "glave_nightly.py"
HEAVY_MODULES = ("torch", "vllm", "cv2", "pandas", "av", "great_expectations", "mlflow", "ultralytics", "sam2")

_counter = iter(range(1_000_000))


def load_dag_module(env: Mapping[str, str] | None = None) -> ModuleType:
    """Import the DAG file as a fresh module with ``env`` applied during the import."""
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        name = f"glave_nightly_{next(_counter)}"
        spec = importlib.util.spec_from_file_location(name, DAG_FILE)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
