"""Run the glave_evaluate DAG through real Airflow ``dag.test()``, once per run conf, and write the
outcomes as JSON (run by the DAG test in a subprocess with its own AIRFLOW_HOME).

    python -m tests.evaluation.evaluate_dag_run <out.json> '<conf json>' ['<conf json>' ...]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "glave_evaluate.py"


def main(out: str, *confs: str) -> None:
    spec = importlib.util.spec_from_file_location("glave_evaluate", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    outcomes = []
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i, conf in enumerate(confs):
        run = dag.test(logical_date=start + timedelta(days=i), run_conf=json.loads(conf))
        tis = sorted(run.get_task_instances(), key=lambda t: t.task_id)
        outcomes.append({"conf": json.loads(conf), "state": str(run.state),
                         "tasks": {t.task_id: str(t.state) for t in tis}})
    Path(out).write_text(json.dumps(outcomes, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:])
