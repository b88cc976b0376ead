"""Render the pods a run would create, without a cluster (``glave render-pods``).

The command lives here, on the Airflow side, and reaches ``glave`` through the
``glave.commands`` entry point (pyproject.toml), so the pod side never imports this package.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from glave_tasks.cli import _out, config_opt, store_opt
from glave_tasks.config import GlaveConfig, load_config
from glave_tasks.errors import ConfigError
from glave_tasks.stages import available

from .factory import glave_task, stage_task

K8S_DIR = Path(__file__).resolve().parent.parent / "k8s"
OVERLAY_CONFIG = "glave-config.yaml"


def overlay_config_path(overlay: str) -> Path:
    """The glave config an overlay ships (its ConfigMap source): a name under k8s/overlays or a folder."""
    folder = Path(overlay) if "/" in overlay else K8S_DIR / "overlays" / overlay
    path = folder / OVERLAY_CONFIG
    if not path.exists():
        raise ConfigError(f"overlay {overlay!r}: no {path}")
    return path


def config_for(config_path: str | None, overlay: str | None) -> GlaveConfig:
    """The config with the overlay's settings on top (overlay < GLAVE__ environment)."""
    overrides: dict[str, Any] = {}
    if overlay:
        overrides = yaml.safe_load(overlay_config_path(overlay).read_text()) or {}
    return load_config(config_path, overrides=overrides)


def pod_operators(config: GlaveConfig, run_id: str, shard: int, *, config_uri: str | None = None,
                  store_uri: str | None = None) -> list[Any]:
    """Every task's pod operator for one shard: discover, each registered stage, report, publish, mlflow-log."""
    config = config.model_copy(deep=True)
    config.orchestration.executor = "kubernetes"
    common: dict[str, Any] = {"run_id": run_id, "config_uri": config_uri, "store_uri": store_uri}
    ops = [glave_task(config, task_id="discover", subcommand=["discover"], options={"--input": config.orchestration.input_prefix},
                      flags=("--json",), result_key="shards", **common)]
    ops += [stage_task(config, name, shard=shard, **common) for name in available()]
    ops += [glave_task(config, task_id=t, subcommand=[c], **common)
            for t, c in (("report", "report"), ("publish", "publish"), ("mlflow_log", "mlflow-log"))]
    return ops


def render_pods(config: GlaveConfig, run_id: str, shard: int, *, config_uri: str | None = None,
                store_uri: str | None = None) -> list[dict[str, Any]]:
    """Pod manifests as plain dicts (what the Kubernetes API would receive)."""
    from kubernetes.client import ApiClient

    api = ApiClient()
    out = []
    # The operator logs each pod it builds; keep stdout for the manifests alone.
    with contextlib.redirect_stdout(sys.stderr):
        for op in pod_operators(config, run_id, shard, config_uri=config_uri, store_uri=store_uri):
            pod = op.build_pod_request_obj(context=None, dry_run=True)
            out.append(api.sanitize_for_serialization(pod))
    return out


@click.command("render-pods")
@click.option("--run-id", required=True)
@click.option("--overlay", default=None, help="Kustomize overlay whose glave config applies (dev, prod or a folder).")
@click.option("--shard", type=int, default=0, show_default=True)
@config_opt
@store_opt
def render_pods_command(run_id: str, overlay: str | None, shard: int, config_path: str | None, store: str | None) -> None:
    """Print every task's Kubernetes pod manifest (YAML) for one shard, without a cluster."""
    cfg = config_for(config_path, overlay)
    manifests = render_pods(cfg, run_id, shard, config_uri=config_path, store_uri=store or cfg.store.root)
    click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False, file=_out())
