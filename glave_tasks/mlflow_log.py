"""MLflow tracking of a pipeline run, read entirely from the store's commit markers.

One MLflow run per pipeline run (tag ``glave.run_id``), one nested run per stage. Parameters:
the config sections that shape outputs, prompt versions and model ids. Metrics: committed
shards, videos, per-stage counts and metrics, failures by reason, durations. Models: every
detector/segmenter/VLM reference becomes an external model version (its URI or id as source)
in the registry, linked to the stage's run. The quality report is attached when present.
Logging again for the same run id reuses the same MLflow runs and model versions.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import GlaveConfig
from .errors import GlaveError
from .keys import validate_run_id
from .layout import RunLayout
from .run import Run
from .stages import available, build_stage, config_sections
from .store import ArtifactStore

MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
RUN_TAG = "glave.run_id"
STAGE_TAG = "glave.stage"


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True)
        out[prefix[:-1]] = text[:MAX_PARAM_CHARS]
    return out


def config_models(config: GlaveConfig) -> dict[str, dict[str, str]]:
    """Model ids the configured stages declare (their backends' weights URIs, checkpoints, model
    ids and revisions), per stage; the same ids enter the stages' fingerprints."""
    out: dict[str, dict[str, str]] = {}
    for stage in available():
        ids = {k: v for k, v in build_stage(stage, config).model_ids().items() if v}
        if ids:
            out[stage] = ids
    return out


def summarize_stage(markers: list[dict[str, Any]], shards_total: int) -> dict[str, float]:
    """Totals over a stage's committed shards."""
    m: dict[str, float] = {"shards_committed": len(markers), "shards_missing": shards_total - len(markers),
                           "videos_in": 0, "videos_ok": 0, "videos_failed": 0, "duration_s": 0.0,
                           "max_shard_duration_s": 0.0}
    for mk in markers:
        m["videos_in"] += mk.get("videos_in", 0)
        m["videos_ok"] += len(mk.get("videos_ok", []))
        m["videos_failed"] += mk.get("videos_failed", 0)
        m["duration_s"] += float(mk.get("duration_s") or 0)
        m["max_shard_duration_s"] = max(m["max_shard_duration_s"], float(mk.get("duration_s") or 0))
        for group in ("counts", "metrics", "failures"):
            for k, v in (mk.get(group) or {}).items():
                if isinstance(v, (int, float)):
                    key = _metric_key(f"{group}.{k}" if group == "failures" else k)
                    m[key] = m.get(key, 0) + v
    return m


def _metric_key(name: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space / only.
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def _union(markers: Iterable[dict[str, Any]], field: str) -> dict[str, str]:
    seen: dict[str, list[str]] = {}
    for mk in markers:
        for k, v in (mk.get(field) or {}).items():
            vals = seen.setdefault(k, [])
            if str(v) not in vals:
                vals.append(str(v))
    return {k: ",".join(v) for k, v in seen.items()}


def _experiment_id(client: Any, config: GlaveConfig) -> str:
    exp = client.get_experiment_by_name(config.mlflow.experiment)
    if exp is not None:
        return str(exp.experiment_id)
    loc = config.mlflow.artifact_location
    if "://" not in loc:
        Path(loc).mkdir(parents=True, exist_ok=True)
        loc = Path(loc).resolve().as_uri()
    return str(client.create_experiment(config.mlflow.experiment, artifact_location=loc))


# Values searched for in MLflow filter strings: run ids (validated at the edge against this same
# charset) and stage names. Nothing else is ever interpolated into a filter.
_FILTER_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,250}$")


def _find_run(client: Any, exp_id: str, tags: dict[str, str]) -> Any | None:
    """The run carrying exactly these tag values. Values are checked against a quote-free charset
    before they reach the filter string, and matches are re-checked by equality, so no run id
    can select (or write into) another run's MLflow run."""
    for value in tags.values():
        if not _FILTER_VALUE.match(value):
            raise GlaveError(f"refusing to search MLflow for tag value {value[:80]!r}: outside [A-Za-z0-9._-]")
    filter_string = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs = client.search_runs([exp_id], filter_string=filter_string, max_results=100)
    exact = [r for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items())]
    return exact[0] if exact else None


def _log_params(client: Any, run: Any, params: dict[str, str]) -> None:
    # Parameters are immutable in MLflow: a re-log adds only what the run does not have yet.
    have = run.data.params
    from mlflow.entities import Param

    new = [Param(k[:250], v) for k, v in params.items() if k[:250] not in have]
    for i in range(0, len(new), 100):
        client.log_batch(run.info.run_id, params=new[i:i + 100])


def _log_metrics(client: Any, run_id: str, metrics: dict[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(_metric_key(k), float(v), now, 0) for k, v in metrics.items()]
    for i in range(0, len(batch), 500):
        client.log_batch(run_id, metrics=batch[i:i + 500])


def _register_model(client: Any, name: str, source: str, run_id: str, tags: dict[str, str]) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="External model referenced by the glave pipeline")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    for mv in client.search_model_versions(f"name='{name}'"):
        if mv.source == source:
            return str(mv.version)
    return str(client.create_model_version(name, source=source, run_id=run_id, tags=tags).version)


def model_name(stage: str, key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"glave-{stage}-{key}")


def _client(config: GlaveConfig, run_id: str) -> Any:
    validate_run_id(run_id)  # before any MLflow call: the id becomes a tag and a search value
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    uri = config.mlflow.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _pipeline_run(client: Any, exp_id: str, config: GlaveConfig, run_id: str, store_root: str) -> str:
    """The MLflow run of pipeline run ``run_id``, created on first use."""
    parent = _find_run(client, exp_id, {RUN_TAG: run_id, STAGE_TAG: "pipeline"})
    if parent is None:
        parent = client.create_run(exp_id, run_name=run_id, tags={
            RUN_TAG: run_id, STAGE_TAG: "pipeline", "glave.store": store_root,
            "glave.pipeline_version": config.run.pipeline_version,
        })
    return str(parent.info.run_id)


def log_model_server(config: GlaveConfig, run_id: str, metrics: dict[str, float], *, store_root: str) -> str:
    """Log what the run's model server reported (``engine_starts``, ``startup_s``) as
    ``model_server.*`` metrics of the pipeline's MLflow run, where :func:`log_run` puts a local
    server's from its record. For a server whose record is not in the store: the Kubernetes
    Deployment, counted by its teardown. Returns the MLflow run id."""
    client = _client(config, run_id)
    parent_id = _pipeline_run(client, _experiment_id(client, config), config, run_id, store_root)
    _log_metrics(client, parent_id, {f"model_server.{k}": v for k, v in metrics.items()})
    return parent_id


def log_run(store: ArtifactStore, config: GlaveConfig, run_id: str) -> dict[str, Any]:
    """Log one pipeline run to MLflow (idempotent); returns the MLflow run ids and what was logged."""
    client = _client(config, run_id)
    uri = config.mlflow.tracking_uri
    exp_id = _experiment_id(client, config)
    run = Run(store, run_id)
    manifest = run.manifest
    shards = run.shards

    parent_id = _pipeline_run(client, exp_id, config, run_id, store.root)
    config_json = config.model_dump(mode="json", by_alias=True)
    params = {k: v for s in config_sections() for k, v in flatten(config_json[s], f"{s}.").items()}
    params["run.input_uri"] = manifest.get("input_uri", "")
    _log_params(client, client.get_run(parent_id), params)

    by_config = config_models(config)
    logged_models: dict[str, str] = {}
    totals: dict[str, float] = {"videos": manifest["num_videos"], "shards": len(shards),
                                "skipped_already_annotated": manifest.get("skipped_already_annotated", 0)}
    stages_logged = []
    for stage in available():
        markers = list(run.commits(stage).values())
        if not markers and not run.ran(stage):
            continue  # the stage never ran for this run
        child = _find_run(client, exp_id, {RUN_TAG: run_id, STAGE_TAG: stage})
        if child is None:
            child = client.create_run(exp_id, run_name=f"{run_id}/{stage}", tags={
                RUN_TAG: run_id, STAGE_TAG: stage, "mlflow.parentRunId": parent_id,
            })
        child_id = child.info.run_id
        models = {**by_config.get(stage, {}), **_union(markers, "models")}
        prompts = _union(markers, "prompts")
        stage_params = {f"model.{k}": v for k, v in models.items()}
        stage_params.update({f"prompt.{k}": v for k, v in prompts.items()})
        stage_params["code_version"] = ",".join(sorted({str(m.get("code_version")) for m in markers})) or "none"
        _log_params(client, client.get_run(child_id), {k: v[:MAX_PARAM_CHARS] for k, v in stage_params.items()})
        _log_params(client, client.get_run(parent_id), {f"prompts.{stage}.{k}": v[:MAX_PARAM_CHARS] for k, v in prompts.items()})
        metrics = summarize_stage(markers, len(shards))
        _log_metrics(client, child_id, metrics)
        for k in ("videos_ok", "videos_failed", "duration_s"):
            totals[f"{stage}.{k}"] = metrics[k]
        for key, ref in models.items():
            for one in filter(None, ref.split(",")):
                name = model_name(stage, key)
                logged_models[f"{name}"] = _register_model(client, name, one, child_id, {"glave.run_id": run_id, "glave.stage": stage})
        client.set_terminated(child_id, "FINISHED")
        stages_logged.append(stage)
    from .language.model_server import describe

    server_params, server_metrics = describe(config, store, run_id)  # the run's model server, if any
    _log_params(client, client.get_run(parent_id), {k: v[:MAX_PARAM_CHARS] for k, v in server_params.items()})
    _log_metrics(client, parent_id, server_metrics)
    _log_metrics(client, parent_id, totals)
    from .evaluation.tracking import metrics_and_tags

    eval_metrics, eval_tags = metrics_and_tags(store, run_id)  # glave evaluate results, if any
    _log_metrics(client, parent_id, eval_metrics)
    for key, value in eval_tags.items():
        client.set_tag(parent_id, key, value)

    report_keys = store.list(RunLayout(run_id).report_prefix)
    if report_keys:
        with tempfile.TemporaryDirectory(prefix="glave-report-") as tmp:
            base = RunLayout(run_id).report_prefix + "/"
            for key in report_keys:
                dest = Path(tmp) / key[len(base):]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(store.read_bytes(key))
            client.log_artifacts(parent_id, tmp, artifact_path="report")
    client.set_terminated(parent_id, "FINISHED")
    return {"run_id": run_id, "mlflow_run_id": parent_id, "experiment_id": exp_id, "tracking_uri": uri,
            "stages": stages_logged, "models": logged_models, "report_files": len(report_keys)}
