"""Production: run a ``glave`` command in a Kubernetes pod of the stage family's image.

The task in the DAG is a light operator; the KubernetesPodOperator (and the Kubernetes client
models, over a second to import) is built only when the task runs or its pod is rendered, so
parsing the DAG stays cheap. The pod's command line is built from the rendered fields, so a
mapped task instance's shard and the run's templated run id land in its arguments.
"""

from __future__ import annotations

from typing import Any

from glave_tasks.config import GlaveConfig
from glave_tasks.contract import Resources

from .command import POD_RESULT_FILE
from .glave_operator import GlaveOperator


class GlavePodOperator(GlaveOperator):
    """Runs ``glave <subcommand> ...`` in a pod through a KubernetesPodOperator.

    :param glave_config: the config whose ``orchestration.k8s`` section shapes the pod.
    :param family: the image family (``cpu``, ``vision``, ``llm``).
    :param resources: what the pod requests (a stage's declared resources).
    :param pod_name: the pod's name prefix.
    :param pod_labels: extra pod labels.
    :param kwargs: the command's parameters (:class:`GlaveOperator`) and Airflow's.
    """

    ui_color = "#e0ecf8"

    def __init__(self, *, glave_config: GlaveConfig, family: str, resources: Resources, pod_name: str,
                 pod_labels: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.glave_config = glave_config
        self.family = family
        self.stage_resources = resources
        self.pod_name = pod_name
        self.pod_labels = dict(pod_labels or {})
        self._pod_operator: Any = None

    def arguments(self) -> list[str]:
        """The container's arguments (its command is ``glave`` under tini)."""
        return self.command().argv(POD_RESULT_FILE if self.want_result else None)[1:]

    def pod_operator(self) -> Any:
        """The KubernetesPodOperator that runs this task's pod."""
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        from .pod_spec import CONTAINER_COMMAND, pod_kwargs

        return KubernetesPodOperator(
            task_id=self.task_id, cmds=list(CONTAINER_COMMAND), arguments=self.arguments(),
            # Only commands with a result use the XCom sidecar (hardened like the main container).
            do_xcom_push=self.want_result,
            **pod_kwargs(self.glave_config, family=self.family, resources=self.stage_resources,
                         name=self.pod_name, labels=self.pod_labels),
        )

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        return self.pod_operator().build_pod_request_obj(context, dry_run=dry_run)

    def use_run_config(self) -> None:
        """Size the pod from the config the run uses: the DAG file never reads a remote config, so
        an ``s3://`` GLAVE_CONFIG is read here, when the task runs, and the stage's resources follow it."""
        uri = str(self.config_uri or "").strip()
        if uri in ("", "None"):
            return
        from glave_tasks.config import load_config
        from glave_tasks.stages import build_stage

        self.glave_config = load_config(uri)
        if self.select_stage is not None:
            self.stage_resources = build_stage(self.select_stage, self.glave_config).resources()

    def execute(self, context: Any) -> Any:
        self.skip_unless_selected(context)
        self.use_run_config()
        self._pod_operator = self.pod_operator()
        result = self._pod_operator.execute(context)
        self.describe_outlets(context)
        return self.select_result(result)

    def on_kill(self) -> None:
        if self._pod_operator is not None:
            self._pod_operator.on_kill()
