"""Run the glave_nightly DAG once through real Airflow (``dag.test()``: scheduler logic, mapping,
trigger rules, retries and XCom, every task in this process) and print the outcome as JSON.

Needs an initialised Airflow home (``airflow db migrate``) and, for the glave side, the usual
``GLAVE_CONFIG``. Exit code 0 when the DAG run succeeded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parent.parent / "dags" / "glave_nightly.py"


def load_dag():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("glave_nightly", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conf", default="{}", help="DAG run conf (params) as JSON.")
    parser.add_argument("--logical-date", default=None, help="ISO date; default now.")
    parser.add_argument("--conn-file", default=None, help="Airflow connections file (JSON/YAML).")
    parser.add_argument("--out", default=None, help="Also write the outcome JSON here.")
    args = parser.parse_args(argv)

    dag = load_dag()
    logical = datetime.fromisoformat(args.logical_date) if args.logical_date else datetime.now(UTC)
    if logical.tzinfo is None:
        logical = logical.replace(tzinfo=UTC)
    dagrun = dag.test(logical_date=logical, run_conf=json.loads(args.conf), conn_file_path=args.conn_file)
    tis = sorted(dagrun.get_task_instances(), key=lambda t: (t.task_id, t.map_index))
    outcome = {
        "dag_id": dag.dag_id, "run_id": dagrun.run_id, "state": str(dagrun.state),
        "logical_date": logical.isoformat(),
        "tasks": [{"task_id": t.task_id, "map_index": t.map_index, "state": str(t.state)} for t in tis],
    }
    text = json.dumps(outcome, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if outcome["state"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
