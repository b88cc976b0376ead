#!/usr/bin/env bash
# The nightly job on the embedded default: local store under var/, bundled sample videos, CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export MLFLOW_DISABLE_TELEMETRY=true YOLO_OFFLINE=1 HF_HUB_OFFLINE=1
mkdir -p var/input
cp -n tests/data/bigbuckbunny.mp4 var/input/ 2>/dev/null || true
.venv/bin/python -c "from tests import synthetic; synthetic.two_shot_video('var/input/two_shot.mp4')"
run_id="demo-$(date -u +%Y%m%dT%H%M%S)"
.venv/bin/glave run --input var/input --store var/store --run-id "$run_id" --reprocess
.venv/bin/glave status --run-id "$run_id" --store var/store
echo "outputs: var/store/runs/$run_id"
