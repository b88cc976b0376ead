"""Production: run a ``glave`` command in a Kubernetes pod of the stage family's image."""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from .command import POD_RESULT_FILE
from .selection import GlaveTaskMixin


class GlavePodOperator(GlaveTaskMixin, KubernetesPodOperator):
    """A KubernetesPodOperator whose container runs ``glave <subcommand> ...``.

    The command line is rebuilt from the rendered fields right before the pod is created, so a
    mapped task instance's shard and the run's templated run id land in its arguments. Only
    commands that return a result (discover) use the XCom sidecar.
    """

    template_fields = tuple(dict.fromkeys((*KubernetesPodOperator.template_fields, *GlaveTaskMixin.glave_template_fields)))
    ui_color = "#e0ecf8"

    def __init__(self, **kwargs: Any) -> None:
        glave_kwargs = self.pop_glave_kwargs(kwargs)
        want_result = bool(glave_kwargs.get("want_result") or glave_kwargs.get("result_key"))
        super().__init__(cmds=["glave"], arguments=[], do_xcom_push=want_result, **kwargs)
        self.init_glave(**glave_kwargs)
        self.arguments = self._argv()

    def _argv(self) -> list[str]:
        return self.command().argv(POD_RESULT_FILE if self.want_result else None)[1:]

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        self.arguments = self._argv()
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def execute(self, context: Any) -> Any:
        self.skip_unless_selected(context)
        return self.select_result(super().execute(context))
