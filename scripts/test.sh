#!/usr/bin/env bash
# Runs ruff, mypy and the suite in the main environment. Exit code 5 (no tests collected) is a failure here:
# a suite that ran nothing proves nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
export MLFLOW_DISABLE_TELEMETRY=true YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 AIRFLOW__CORE__LOAD_EXAMPLES=False
# Lint and types first: cheap, and a failure names the file and line.
.venv/bin/ruff check . || exit 1
.venv/bin/mypy || exit 1
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit $rc
