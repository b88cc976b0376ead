"""The Airflow task that runs one ``glave`` command, whatever runs it (a subprocess or a pod).

:class:`GlaveOperator` holds the command's parameters and the run-time behaviour both
executors share; :class:`operators.local.GlaveLocalOperator` and
:class:`operators.pod.GlavePodOperator` only say how the command is started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from .command import GlaveCommand


class GlaveOperator(BaseOperator):
    """Runs ``glave <subcommand> --run-id R [--shard K] [--config C] [--store S] [options] [flags]``.

    :param subcommand: the glave subcommand and its words, e.g. ``["stage", "track"]``.
    :param run_id: the pipeline run id (templated).
    :param shard: the shard the command works on, or None (templated: a mapped task group passes it).
    :param config_uri: config path or ``s3://`` URI given to the command (templated).
    :param store_uri: artifact store root given to the command (templated).
    :param options: ``"--flag": value`` pairs (templated); a value rendering to None or "" leaves its
        flag out, "True" turns a value-less flag on, "False" leaves it out.
    :param flags: value-less switches always passed, e.g. ``("--json",)``.
    :param select_stage: the stage this task runs; the task is skipped when the run's ``stages``
        param leaves that stage out.
    :param want_result: return the command's small JSON result as the task's XCom.
    :param result_key: return only this key of that result (implies ``want_result``); Airflow maps
        only over a task's whole return value, so discover returns just its shard list.
    :param kwargs: Airflow's own operator arguments (task_id, retries, pool, trigger_rule, ...).
    """

    # shard is templated so that a mapped task group's argument resolves to the shard number.
    template_fields: Sequence[str] = ("run_id", "shard", "config_uri", "store_uri", "options")

    def __init__(self, *, subcommand: Sequence[str], run_id: str, shard: int | str | None = None,
                 config_uri: str | None = None, store_uri: str | None = None,
                 options: Mapping[str, object] | None = None, flags: Sequence[str] = (),
                 select_stage: str | None = None, want_result: bool = False, result_key: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subcommand = tuple(subcommand)
        self.run_id = run_id
        self.shard = shard
        self.config_uri = config_uri
        self.store_uri = store_uri
        self.options = dict(options or {})
        self.flags = tuple(flags)
        self.select_stage = select_stage
        self.want_result = want_result or result_key is not None
        self.result_key = result_key

    def command(self) -> GlaveCommand:
        return GlaveCommand(self.subcommand, self.run_id, self.shard, self.config_uri, self.store_uri,
                            self.options, self.flags)

    def select_result(self, result: Any) -> Any:
        """The XCom value: the command's JSON result, or one key of it."""
        if self.result_key is None or result is None:
            return result
        if not isinstance(result, dict) or self.result_key not in result:
            raise ValueError(f"command result has no {self.result_key!r}: {str(result)[:200]}")
        return result[self.result_key]

    def describe_outlets(self, context: Any) -> None:
        """Tell consumers of the published-dataset Asset which run this event is about."""
        events = (context or {}).get("outlet_events")
        if events is None:
            return
        for asset in getattr(self, "outlets", None) or []:
            events[asset].extra.update({"run_id": str(self.run_id), "store": str(self.store_uri or "")})

    def skip_unless_selected(self, context: Any) -> None:
        """A stage left out of the run's ``stages`` param is skipped, not failed."""
        if self.select_stage is None or context is None:
            return
        chosen = (context.get("params") or {}).get("stages")
        if chosen and self.select_stage not in chosen:
            raise AirflowSkipException(f"stage {self.select_stage!r} not selected for this run ({chosen})")
