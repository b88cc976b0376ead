"""The Airflow Asset that stands for the published dataset (what downstream DAGs schedule on)."""

from __future__ import annotations

from pathlib import Path

from glave_tasks.config import GlaveConfig
from glave_tasks.keys import safe_segment


def dataset_asset_uri(config: GlaveConfig) -> str:
    """``<store root>/published/<pipeline_version>`` as an absolute URI (Assets need one)."""
    root = config.store.root.rstrip("/")
    if not root.startswith("s3://"):
        local = root[len("file://"):] if root.startswith("file://") else root
        root = Path(local).expanduser().resolve().as_uri()
    return f"{root}/published/{safe_segment(config.run.pipeline_version)}"
