"""Embedded default: run a ``glave`` command as a subprocess of the Airflow worker.

The command line is the one a pod would run (same subcommand, same flags); only the result file
path differs. Each stage family may use its own interpreter (``orchestration.local_python``), as
each family has its own image in production. Commands are forked from that interpreter's warm
launcher (``glave_tasks.launcher``: heavy libraries imported once) unless ``launcher`` is off or
no launcher can be started, in which case a fresh interpreter runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException

from glave_tasks.launcher import LaunchedCommand, LauncherUnavailable, launch

from .glave_operator import GlaveOperator


def glave_executable(python: str | None) -> list[str]:
    """The ``glave`` console script beside an interpreter (or ``python -m glave_tasks.cli``)."""
    py = python or sys.executable
    script = Path(py).parent / "glave"
    return [str(script)] if script.exists() else [py, "-m", "glave_tasks.cli"]


class GlaveLocalOperator(GlaveOperator):
    """Runs ``glave ...`` locally; returns the command's small JSON result (if asked) as XCom.

    :param python: the interpreter of the stage family's environment (default: this one).
    :param aws_conn_id: Airflow connection whose S3 credentials the command gets (None: none).
    :param launcher: fork the command from the environment's warm launcher.
    :param kwargs: the command's parameters (:class:`GlaveOperator`) and Airflow's.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, python: str | None = None, aws_conn_id: str | None = None, launcher: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.python = python
        self.aws_conn_id = aws_conn_id
        self.launcher = launcher
        self._proc: subprocess.Popen[str] | LaunchedCommand | None = None

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if self.aws_conn_id:
            # Credentials come from the Airflow connection and go to the child's environment only;
            # they are never logged or returned.
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            # A missing connection falls back to boto3's chain, which may find nothing (local store).
            found = AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="s3").get_session().get_credentials()
            creds = found.get_frozen_credentials() if found is not None else None
            if creds is not None and creds.access_key:
                env["AWS_ACCESS_KEY_ID"] = creds.access_key
                env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
                if creds.token:
                    env["AWS_SESSION_TOKEN"] = creds.token
        return env

    def execute(self, context: Any) -> Any:
        self.skip_unless_selected(context)
        with tempfile.TemporaryDirectory(prefix="glave-task-") as tmp:
            result_file = str(Path(tmp) / "result.json") if self.want_result else None
            argv = self.command().argv(result_file)
            self.log.info("running: %s", " ".join(argv))
            self._proc = self._start(argv, self._environment())
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                self.log.info("%s", line.rstrip())
            rc = self._proc.wait()
            if rc != 0:
                raise AirflowException(f"{' '.join(argv[:3])} exited with code {rc}")
            self.describe_outlets(context)
            if result_file is None:
                return None
            with open(result_file) as fh:
                return self.select_result(json.load(fh))

    def _start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str] | LaunchedCommand:
        if self.launcher:
            try:
                return launch(argv, env=env, python=self.python)
            except LauncherUnavailable as exc:
                self.log.warning("%s; starting a fresh interpreter", exc)
        return subprocess.Popen(glave_executable(self.python) + argv[1:], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)

    def on_kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
