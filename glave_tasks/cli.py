"""The ``glave`` command: the one entrypoint that pods and local runs both use."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from .config import GlaveConfig, load_config
from .errors import GlaveError
from .keys import validate_run_id
from .store import ArtifactStore, open_store

# The real stdout, saved by main(): while a command runs, sys.stdout points at stderr so that
# third-party banners (Ultralytics' settings notice, progress prints) never mix into results.
_RESULTS_OUT: list[Any] = []


def _out() -> Any:
    return _RESULTS_OUT[-1] if _RESULTS_OUT else sys.stdout


def _emit(obj: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str), file=_out())
    else:
        click.echo(human(obj) if human else json.dumps(obj, indent=2, default=str), file=_out())


def _open(config: str | None, store: str | None) -> tuple[GlaveConfig, ArtifactStore]:
    cfg = load_config(config)
    if store:
        cfg.store.root = store
    return cfg, open_store(cfg.store.root, cfg.store.s3, cfg.store.local_cache)


config_opt = click.option("--config", "config_path", default=None, envvar="GLAVE_CONFIG",
                          help="YAML config (path or s3:// URI); default: $GLAVE_CONFIG.")
store_opt = click.option("--store", default=None, help="Artifact store root (path, file:// or s3://).")
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
result_file_opt = click.option("--result-file", default=None, type=click.Path(dir_okay=False),
                               help="Also write the small JSON result here (read back by the orchestrator).")


def _write_result(path: str | None, obj: Any) -> None:
    if path:
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(obj, sort_keys=True, default=str))


PLUGIN_GROUP = "glave.commands"


def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP)}


class _Commands(click.Group):
    """The built-in commands plus those other installed packages register under the
    ``glave.commands`` entry point group (the Airflow side's ``render-pods``). A plugin is
    imported only when invoked, so this package never imports the orchestration side."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in _plugins():
            loaded: click.Command = _plugins()[cmd_name].load()
            return loaded
        return found


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def cli(verbose: bool) -> None:
    """GLaVE batch annotation: videos in, fine-grained captions and QA out."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--input", "input_uri", required=True, help="Input prefix (folder or s3:// prefix).")
@click.option("--run-id", required=True)
@click.option("--reprocess", is_flag=True, help="Include videos this pipeline version already annotated.")
@click.option("--shard-size", type=click.IntRange(min=1), default=None, help="Videos per shard (>= 1).")
@click.option("--max-videos", type=click.IntRange(min=1), default=None, help="At most this many videos (>= 1).")
@config_opt
@store_opt
@json_opt
@result_file_opt
def discover(input_uri: str, run_id: str, reprocess: bool, shard_size: int | None, max_videos: int | None,
             config_path: str | None, store: str | None, as_json: bool, result_file: str | None) -> None:
    """Find the run's videos and write its shard plan."""
    from .discover import discover as do_discover

    cfg, st = _open(config_path, store)
    manifest = do_discover(st, cfg, input_uri, run_id, reprocess=reprocess, shard_size=shard_size, max_videos=max_videos)
    _write_result(result_file, manifest)
    _emit(manifest, as_json, lambda m: f"run {m['run_id']}: {m['num_videos']} videos in {len(m['shards'])} shards "
          f"({m['skipped_already_annotated']} already annotated, {m['duplicates']} duplicates skipped)")


@cli.command()
@click.argument("name")
@click.option("--run-id", required=True)
@click.option("--shard", type=click.IntRange(min=0), required=True)
@click.option("--force", is_flag=True, help="Redo the shard even if committed with the same fingerprint.")
@config_opt
@store_opt
@json_opt
@result_file_opt
def stage(name: str, run_id: str, shard: int, force: bool, config_path: str | None, store: str | None, as_json: bool,
          result_file: str | None) -> None:
    """Run one stage over one shard. Exit 1 when too many of its videos failed (as `glave run`),
    2 for a user error, 3 for an infrastructure fault (out of memory included)."""
    from .address_space import exhaustion_fails_the_stage, preflight
    from .errors import ShardFailed
    from .language.model_server import attach
    from .runner import run_stage
    from .stages import build_stage

    cfg, st = _open(config_path, store)
    cfg = attach(cfg, st, run_id)  # engine stages: the run's model server, when there is one
    built = build_stage(name, cfg)
    # Before anything native starts threads: under too small an address space they abort or hang.
    preflight(f"{name} shard {shard}", built.resources().memory)
    try:
        with exhaustion_fails_the_stage(f"{name} shard {shard}"):
            outcome = run_stage(built, st, run_id, shard, force=force, show_progress=not as_json)
    except ShardFailed as exc:
        # The work ran and did not succeed: the same exit as `glave run` for a failed shard.
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    _write_result(result_file, outcome.to_json())
    _emit(outcome.to_json(), as_json, _format_outcome)


@cli.group(name="model-server")
def model_server() -> None:
    """The run's model server (engine backend vllm, model_server.mode per_run)."""


@model_server.command(name="start")
@click.option("--run-id", required=True)
@config_opt
@store_opt
@json_opt
def model_server_start(run_id: str, config_path: str | None, store: str | None, as_json: bool) -> None:
    """Start the run's local vLLM server (or find it running); nothing to do for other engines."""
    from .language import model_server as ms

    cfg, st = _open(config_path, store)
    if not ms.server_needed(cfg):
        _emit({"run_id": run_id, "needed": False}, as_json, lambda r: "no model server needed for this engine")
        return
    record = ms.start_local(cfg, st, run_id)
    _emit(record, as_json, lambda r: f"model server {r['model']} ready at {r['url']} in {r['startup_s']} s")


@model_server.command(name="stop")
@click.option("--run-id", required=True)
@config_opt
@store_opt
@json_opt
def model_server_stop(run_id: str, config_path: str | None, store: str | None, as_json: bool) -> None:
    """Stop the run's local vLLM server; safe when none runs."""
    from .language import model_server as ms

    _, st = _open(config_path, store)
    record = ms.stop_local(st, run_id)
    _emit(record or {"run_id": run_id, "stopped": False}, as_json,
          lambda r: f"model server of run {run_id} stopped" if r.get("stopped_at") else "no model server recorded")


@model_server.command(name="serve")
@click.option("--port", type=int, default=None, help="Default: the Service port (8000).")
@config_opt
def model_server_serve(port: int | None, config_path: str | None) -> None:
    """Resolve the weights (S3 included) and exec vLLM's OpenAI-compatible server (the server pod)."""
    import os

    from .language import model_server as ms

    cfg = load_config(config_path)
    argv = [sys.executable, "-m", ms.SERVER_MODULE, *ms.serve_args(
        cfg, ms.model_source(cfg), host="0.0.0.0", port=port or ms.SERVICE_PORT, device=ms.resolved_device(cfg))]
    os.execve(argv[0], argv, ms.server_env(cfg))


def _format_outcome(o: dict[str, Any]) -> str:
    counts = ", ".join(f"{k}={v}" for k, v in (o["counts"] or {}).items())
    return (f"{o['stage']} shard {o['shard']}: {o['status']}; videos ok {o['videos_ok']}/{o['videos_in']}, "
            f"failed {o['videos_failed']}; {counts}; {o['duration_s']} s")


@cli.command()
@click.option("--input", "input_uri", required=True, help="Input prefix (folder or s3:// prefix).")
@click.option("--run-id", default=None, help="Defaults to local-<UTC timestamp>.")
@click.option("--reprocess", is_flag=True)
@click.option("--stages", "stage_list", default=None, help="Comma-separated subset of stages.")
@click.option("--force", is_flag=True)
@click.option("--mlflow", "log_mlflow", is_flag=True, help="Log the run to MLflow afterwards (config.mlflow).")
@config_opt
@store_opt
@json_opt
def run(input_uri: str, run_id: str | None, reprocess: bool, stage_list: str | None, force: bool, log_mlflow: bool,
        config_path: str | None, store: str | None, as_json: bool) -> None:
    """Run every available stage over every shard, locally, without Airflow."""
    from .local_run import run_pipeline

    cfg, st = _open(config_path, store)
    # Only an absent --run-id gets the default; an empty one is refused like any invalid id.
    run_id = run_id if run_id is not None else datetime.now(UTC).strftime("local-%Y%m%dT%H%M%S")
    validate_run_id(run_id)
    stages = stage_list.split(",") if stage_list else None
    result = run_pipeline(st, cfg, input_uri, run_id, stages=stages, reprocess=reprocess, force=force,
                          show_progress=not as_json)
    if log_mlflow:
        from .mlflow_log import log_run

        result["mlflow"] = log_run(st, cfg, run_id)
    _emit(result, as_json, lambda r: _format_run(r) + (
        f"\n  mlflow run {r['mlflow']['mlflow_run_id']} at {r['mlflow']['tracking_uri']}" if "mlflow" in r else ""))
    # Exit status tells the truth: any failed stage shard, or a blocked publish, is a failed run.
    if result.get("aborted"):
        click.echo(f"error: run {run_id} stopped: {result['aborted']}", err=True)
        raise click.exceptions.Exit(3)
    if result["failed"] or result.get("publish_blocked"):
        failed = ", ".join(f"{f['stage']}[{f['shard']}]" for f in result["failed"]) or "none"
        click.echo(f"error: run {run_id} did not complete: failed stage shards: {failed}"
                   + (f"; not published: {result['publish_blocked']}" if result.get("publish_blocked") else ""), err=True)
        raise click.exceptions.Exit(1)


def _format_run(r: dict[str, Any]) -> str:
    lines = [f"run {r['run_id']}: {r['num_videos']} videos, {len(r['shards'])} shards -> {r['store']}"]
    lines += [f"  {_format_outcome(o)}" for o in r["outcomes"]]
    lines += [f"  FAILED {f['stage']} shard {f['shard']}: {f['error']}" for f in r["failed"]]
    if r.get("report"):
        lines.append(f"  report: {r['report']['html']}")
    if r.get("published"):
        lines.append(f"  published {r['published']['videos']} videos to {r['published']['published_to']}")
    if r.get("publish_blocked"):
        lines.append(f"  NOT PUBLISHED: {r['publish_blocked']}")
    if r.get("publish_skipped"):
        lines.append(f"  nothing to publish: {r['publish_skipped']}")
    return "\n".join(lines)


@cli.command()
@click.option("--run-id", required=True)
@config_opt
@store_opt
@json_opt
def status(run_id: str, config_path: str | None, store: str | None, as_json: bool) -> None:
    """Stage x shard states of a run: committed, failed, missing; failures by reason."""
    from .run import Run
    from .status import format_status

    _, st = _open(config_path, store)
    _emit(Run(st, run_id).status(), as_json, format_status)


@cli.command()
@click.option("--run-id", required=True)
@click.option("--stage", "stage_name", required=True, help="Stage to run again.")
@click.option("--shard", type=int, default=None, help="Only this shard (default: every shard of the run).")
@click.option("--downstream", is_flag=True, help="Also re-run every later stage.")
@config_opt
@store_opt
@json_opt
def rerun(run_id: str, stage_name: str, shard: int | None, downstream: bool, config_path: str | None,
          store: str | None, as_json: bool) -> None:
    """Force a stage (and later stages with --downstream) to run again, without Airflow."""
    from .rerun import rerun as do_rerun

    cfg, st = _open(config_path, store)
    result = do_rerun(st, cfg, run_id, stage_name, shard=shard, downstream=downstream, show_progress=not as_json)
    _emit(result, as_json, lambda r: "\n".join(
        [f"rerun {r['run_id']}: stages {', '.join(r['stages'])} on shards {r['shards']}"]
        + [f"  {_format_outcome(o)}" for o in r["outcomes"]]
        + [f"  FAILED {f['stage']} shard {f['shard']}: {f['error']}" for f in r["failed"]]))
    if result["failed"]:
        raise GlaveError(f"{len(result['failed'])} stage shard(s) failed")


@cli.command("mlflow-log")
@click.option("--run-id", required=True)
@config_opt
@store_opt
@json_opt
def mlflow_log(run_id: str, config_path: str | None, store: str | None, as_json: bool) -> None:
    """Log a run to MLflow: params, stage metrics from commit markers, model references, the report."""
    from .mlflow_log import log_run

    cfg, st = _open(config_path, store)
    result = log_run(st, cfg, run_id)
    _emit(result, as_json, lambda r: f"mlflow run {r['mlflow_run_id']} (experiment {r['experiment_id']}) "
          f"at {r['tracking_uri']}: stages {', '.join(r['stages'])}; {len(r['models'])} model references")


# Record files may be named after YouTube ids, which can start with '-': such a path is a target,
# not an option (a real option that is mistyped is still refused, below).
@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("targets", nargs=-1, required=True)
@click.option("--json-out", default=None, help="Write the check results as JSON here.")
@click.option("--html-out", default=None, help="Write a self-contained HTML page of the results here.")
@config_opt
@store_opt
@json_opt
def audit(targets: tuple[str, ...], json_out: str | None, html_out: str | None, config_path: str | None,
          store: str | None, as_json: bool) -> None:
    """Quality checks over GLaVE-1.2M JSON files, folders of them, or run ids. Exit 1 on a critical failure."""
    from pathlib import Path

    from .audit import audit_html, audit_targets

    for t in targets:
        if t.startswith("-") and not Path(t).exists():
            raise click.UsageError(f"no such option or file: {t}")
    cfg, st = _open(config_path, store)
    result = audit_targets(list(targets), cfg, st)
    summary = result.to_json()
    if json_out:
        Path(json_out).write_text(json.dumps(summary, indent=2, default=str))
    if html_out:
        Path(html_out).write_text(audit_html(result, f"glave audit: {', '.join(targets)}"))
    _emit(summary, as_json, lambda s: "\n".join(
        [f"{c['status']:<5} {c['check']:<32} {'' if c['value'] is None else round(c['value'], 4)}"
         f"{'  CRITICAL' if c['critical'] and c['status'] == 'fail' else ''}" for c in s["checks"]]
        + [f"videos={s['stats']['videos']} scenes={s['stats']['scenes']} qa={s['stats']['qa']}"]
        + [f"not taken: {n['path']}: {n['reason']} ({n['detail']})" for n in s["stats"].get("files_not_taken", [])]))
    bad_files = [n for n in result.stats.get("files_not_taken", []) if n["reason"] != "side_file"]
    if bad_files:
        click.echo(f"error: {len(bad_files)} file(s) could not be audited (listed above); the rest were", err=True)
    if result.blocking or bad_files:
        raise click.exceptions.Exit(1)


@cli.command()
@click.option("--run-id", required=True)
@click.option("--out", "out_uri", required=True, help="Target folder or s3:// prefix.")
@config_opt
@store_opt
@json_opt
def export(run_id: str, out_uri: str, config_path: str | None, store: str | None, as_json: bool) -> None:
    """Export a run: one GLaVE JSON per video, Parquet tables, dataset card."""
    from .export import export_run

    cfg, st = _open(config_path, store)
    card = export_run(st, cfg, run_id, out_uri)
    _emit(card, as_json, lambda c: f"exported {c['counts']} to {out_uri}")


@cli.command()
@click.option("--run-id", required=True)
@click.option("--out", "out_uri", default=None, help="Target (default: <store>/published/<run_id>).")
@config_opt
@store_opt
@json_opt
@click.option("--allow-partial", is_flag=True, help="Publish although some stage shards failed or are missing "
              "(their videos are left out and listed in the dataset card).")
def publish(run_id: str, out_uri: str | None, config_path: str | None, store: str | None, as_json: bool,
            allow_partial: bool) -> None:
    """Publish a complete run (every stage shard committed, no critical check failed, at least one
    video); mark its videos annotated. Refusals exit 2 and say why."""
    from .publish import publish as do_publish

    cfg, st = _open(config_path, store)
    result = do_publish(st, cfg, run_id, out_uri, allow_partial=allow_partial)
    _emit(result, as_json, lambda r: f"published {r['videos']} videos of {r['run_id']} to {r['published_to']}")


@cli.command()
@click.option("--run-id", required=True)
@config_opt
@store_opt
@json_opt
def report(run_id: str, config_path: str | None, store: str | None, as_json: bool) -> None:
    """Build the run's analyst report (self-contained HTML + JSON summary + GX Data Docs)."""
    from .report.build import build_report

    cfg, st = _open(config_path, store)
    result = build_report(st, cfg, run_id)
    _emit(result, as_json, lambda r: f"report: {r['html']}")


@cli.command()
@click.option("--run-id", default=None, help="Evaluate this run's captions (videos that completed QA).")
@click.option("--records", default=None, help="Or: an exported dataset / folder of GLaVE JSON records (path or s3://).")
@click.option("--questions", default=None, help="Benchmark annotation folder or s3:// prefix (default: "
              "evaluate.questions; unset: the records' own QA).")
@click.option("--name", default=None, help="Name of this evaluation (default: benchmark | self-qa).")
@click.option("--out", "out_uri", default=None, help="Results folder or s3:// prefix (default for a run: "
              "runs/<run>/evaluation/<name>/).")
@click.option("--baseline", "baseline_run_id", default=None, help="Compare with this run's evaluation "
              "(default: evaluate.baseline_run_id, else the latest other run with this question set).")
@click.option("--repeats", type=int, default=None, help="Judge repeats per question (default: evaluate.repeats).")
@click.option("--fail-on-regression/--no-fail-on-regression", default=True, show_default=True,
              help="Exit 1 when accuracy dropped more than evaluate.regression_margin against the baseline.")
@config_opt
@store_opt
@json_opt
@result_file_opt
def evaluate(run_id: str | None, records: str | None, questions: str | None, name: str | None, out_uri: str | None,
             baseline_run_id: str | None, repeats: int | None, fail_on_regression: bool, config_path: str | None,
             store: str | None, as_json: bool, result_file: str | None) -> None:
    """Score captions with a judge: benchmark-protocol QA, accuracy per dimension and per video, E-rate."""
    from .evaluation.pipeline import evaluate as do_evaluate

    cfg, st = _open(config_path, store)
    summary = do_evaluate(st, cfg, run_id=run_id, records=records, questions=questions, name=name, out=out_uri,
                          baseline_run_id=baseline_run_id, repeats=repeats)
    small = {k: summary[k] for k in ("run_id", "name", "html", "requests")}
    small.update(accuracy=summary["scores"]["accuracy"], e_rate=summary["scores"]["e_rate"],
                 questions=summary["scores"]["questions"], skipped=summary["skipped"]["total"],
                 judge=summary["judge"]["label"], regression=(summary["comparison"] or {}).get("status", "no_baseline"),
                 files_not_taken=len(summary["files_not_taken"]))
    _write_result(result_file, small)
    _emit(summary, as_json, _format_evaluation)
    # Files not scored are never silent: each on stderr with its reason; unreadable ones fail the
    # command (as in glave audit) after everything else was scored.
    for n in summary["files_not_taken"]:
        click.echo(f"not scored: {n['path']}: {n['reason']} ({n['detail']})", err=True)
    bad_files = [n for n in summary["files_not_taken"] if n["reason"] != "side_file"]
    if bad_files:
        click.echo(f"error: {len(bad_files)} file(s) could not be evaluated (listed above); the rest were", err=True)
    if bad_files or (fail_on_regression and (summary["comparison"] or {}).get("regressed")):
        raise click.exceptions.Exit(1)


def _format_evaluation(s: dict[str, Any]) -> str:
    sc = s["scores"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = [f"{s['name']} evaluation of {s['captions']}", f"  judge: {s['judge']['label']}, {s['judge']['repeats']} repeats",
             f"  accuracy {pct(sc['accuracy'])} over {sc['questions']} questions; E-rate {pct(sc['e_rate'])}; "
             f"unparsable {sc['unparsable']}; ties {sc['ties']}; not scored {s['skipped']['total']} {s['skipped']['by_reason']}"]
    lines += [f"  {d:<22} {pct(r['accuracy']):>7}  E {pct(r['e_rate']):>7}  n={r['questions']}" for d, r in sc["per_dimension"].items()]
    cmp = s.get("comparison")
    if cmp:
        lines.append(f"  vs {cmp['baseline_run_id']}: {pct(cmp['baseline_accuracy'])} -> {pct(cmp['accuracy'])} "
                     f"({cmp['status']}, allowed drop {cmp['margin']})")
    lines.append(f"  results: {s['html']}")
    return "\n".join(lines)


@cli.command("evaluate-compare")
@click.option("--run-id", required=True)
@click.option("--name", default="benchmark", show_default=True, help="Which evaluation of the run (question set).")
@click.option("--baseline", "baseline_run_id", default=None, help="Baseline run (default: evaluate.baseline_run_id, "
              "else the latest other run with this evaluation).")
@config_opt
@store_opt
@json_opt
def evaluate_compare(run_id: str, name: str, baseline_run_id: str | None, config_path: str | None, store: str | None,
                     as_json: bool) -> None:
    """Compare a run's evaluation with a baseline run's; exit 2 when accuracy regressed past the margin."""
    from .evaluation.pipeline import check_regression

    cfg, st = _open(config_path, store)
    result = check_regression(st, cfg, run_id, name, baseline_run_id)
    _emit(result, as_json, lambda r: f"{name}: {r['status']}" + (
        f", accuracy {r['baseline_accuracy']} ({r['baseline_run_id']}) -> {r['accuracy']} ({run_id}), delta {r['delta']}"
        if r["status"] != "no_baseline" else f" for {run_id}"))


def _quiet_third_parties() -> None:
    """Third-party libraries keep their settings and caches out of $HOME and quiet on stdout."""
    import tempfile
    from pathlib import Path

    base = Path(os.environ.get("GLAVE_STATE_DIR") or Path(tempfile.gettempdir()) / f"glave-{os.getuid()}")
    for var, sub in (("YOLO_CONFIG_DIR", "ultralytics"), ("MPLCONFIGDIR", "matplotlib")):
        if var not in os.environ:
            os.environ[var] = str(base / sub)
            Path(os.environ[var]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    verbose = any(a in ("-v", "--verbose") for a in args[:1])
    _quiet_third_parties()
    from . import signals
    from .errors import Terminated

    _RESULTS_OUT.append(sys.stdout)
    try:
        # SIGTERM raises Terminated wherever the command is: it unwinds like a failure (failure
        # marker, leases released) and ends in one line, even as PID 1 of a container.
        with signals.handled(), contextlib.redirect_stdout(sys.stderr):
            rc = cli.main(args=args, standalone_mode=False)
    except Terminated as exc:
        click.echo(f"error: {exc}: stopped before it finished; run it again to resume", err=True)
        return exc.exit_code
    except GlaveError as exc:
        click.echo(f"error: {exc}", err=True)
        return int(getattr(exc, "exit_code", 2))
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug or an unclassified fault: one line unless -v
        if verbose:
            raise
        detail = " ".join(str(exc).split())[:300]
        click.echo(f"error: internal error: {type(exc).__name__}: {detail} (run with -v for the traceback)", err=True)
        return 1
    finally:
        _RESULTS_OUT.pop()
    return rc if isinstance(rc, int) else 0  # a command's click Exit(code) (e.g. audit's critical failure)


if __name__ == "__main__":
    sys.exit(main())
