"""What the local and the pod operator share: the templated pieces of the ``glave`` command and
the run-time choice of stages (the DAG's ``stages`` param)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from .command import GlaveCommand

_GLAVE_KWARGS = ("subcommand", "run_id", "shard", "config_uri", "store_uri", "options", "flags",
                 "select_stage", "want_result", "result_key")


class GlaveTaskMixin:
    # shard is templated so that a mapped task group's argument resolves to the shard number.
    glave_template_fields: tuple[str, ...] = ("run_id", "shard", "config_uri", "store_uri", "options")

    subcommand: tuple[str, ...]
    run_id: str
    shard: int | None
    config_uri: str | None
    store_uri: str | None
    options: dict[str, object]
    flags: tuple[str, ...]
    select_stage: str | None
    want_result: bool
    result_key: str | None

    @staticmethod
    def pop_glave_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: kwargs.pop(k) for k in _GLAVE_KWARGS if k in kwargs}

    def init_glave(self, *, subcommand: list[str] | tuple[str, ...], run_id: str, shard: int | None = None,
                   config_uri: str | None = None, store_uri: str | None = None,
                   options: dict[str, object] | None = None, flags: tuple[str, ...] | list[str] = (),
                   select_stage: str | None = None, want_result: bool = False,
                   result_key: str | None = None) -> None:
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
        """The XCom value: the command's JSON result, or one key of it (Airflow maps only over a
        task's whole return value, so discover returns just its shard list)."""
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
