"""Helpers the tests share: the repository root, bundled media, configs, seeded runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from glave_tasks.config import GlaveConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BIG_BUCK_BUNNY = DATA / "bigbuckbunny.mp4"


def make_config(tmp: Path, **sections: dict[str, Any]) -> GlaveConfig:
    """The embedded-default config with the store, cache and MLflow under ``tmp``; ``sections``
    override whole config sections (``run={"shard_size": 2}``), merged over those paths."""
    base: dict[str, dict[str, Any]] = {
        "store": {"root": str(tmp / "store"), "local_cache": str(tmp / "cache")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "artifact_location": str(tmp / "mlruns")},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_config(environ={}, overrides=base)
