"""The Airflow Asset that stands for the published dataset (what downstream DAGs schedule on)."""

from __future__ import annotations

from pathlib import Path

from glave_tasks.config import GlaveConfig


def dataset_asset_uri(config: GlaveConfig) -> str:
    """``<store root>/published`` as an absolute URI: ``glave publish`` writes each run under it
    (``published/<run_id>``); Assets need an absolute URI."""
    root = config.store.root.rstrip("/")
    if not root.startswith("s3://"):
        local = root[len("file://"):] if root.startswith("file://") else root
        root = Path(local).expanduser().resolve().as_uri()
    return f"{root}/published"
