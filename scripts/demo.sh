#!/usr/bin/env bash
# The nightly job on the embedded default, through real Airflow: SQLite metadata database,
# `dag.test()` running glave_nightly with every task as a local `glave` subprocess (the same
# commands the pods run), the bundled sample videos, a local store under var/, MLflow on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export MLFLOW_DISABLE_TELEMETRY=true YOLO_OFFLINE=1 HF_HUB_OFFLINE=1
export AIRFLOW_HOME="$root/var/airflow" AIRFLOW__CORE__DAGS_FOLDER="$root/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False
export GLAVE_CONFIG="$root/var/demo/glave.yaml"

mkdir -p var/input var/demo var/airflow
cp -n tests/data/bigbuckbunny.mp4 var/input/ 2>/dev/null || true
[ -f var/input/two_shot.mp4 ] || .venv/bin/python -c "from tests.support import synthetic; synthetic.two_shot_video('var/input/two_shot.mp4')"

cat > "$GLAVE_CONFIG" <<YAML
store:
  root: $root/var/store
  local_cache: $root/var/cache
orchestration:
  executor: local
  input_prefix: $root/var/input
  aws_conn_id: null
  retries: 0          # a demo should fail fast instead of waiting out retry delays
mlflow:
  tracking_uri: sqlite:///$root/var/mlflow/mlflow.db
  artifact_location: $root/var/mlflow/artifacts
YAML

echo "== airflow db migrate (SQLite under var/airflow)"
.venv/bin/airflow db migrate > var/demo/airflow-migrate.log 2>&1

logical_date="$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
run_id="nightly-$(date -u +%Y-%m-%d)"
echo "== glave_nightly via dag.test() (logical date $logical_date, glave run $run_id; log: var/demo/dag-test.log)"
rc=0
.venv/bin/python scripts/dag_test.py --logical-date "$logical_date" --conf '{"reprocess": true}' \
  --out var/demo/outcome.json > var/demo/dag-test.log 2>&1 || rc=$?
.venv/bin/python - <<'PY'
import json
o = json.load(open("var/demo/outcome.json"))
print(f"dag run {o['run_id']}: {o['state']}")
for t in o["tasks"]:
    idx = f"[{t['map_index']}]" if t["map_index"] >= 0 else ""
    print(f"  {t['task_id']}{idx}: {t['state']}")
PY
.venv/bin/glave status --run-id "$run_id" --store var/store
echo "report: $root/var/store/runs/$run_id/report/index.html"
.venv/bin/glave mlflow-log --run-id "$run_id"
echo "browse: .venv/bin/mlflow ui --backend-store-uri sqlite:///$root/var/mlflow/mlflow.db"
exit $rc
