# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing: torch 2.13.0 (CPU) first, then the project with its locked dependencies.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_TELEMETRY := false

.PHONY: install demo test test-all lint lock clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

demo: $(INSTALLED)  ## synthetic data → the whole Kubeflow pipeline locally (kfp.local) → summary table
	$(PY) -m em3 demo

test: $(INSTALLED)  ## the default suite (slow checks excluded), two processes
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

test-all: $(INSTALLED)
	$(PY) -m pytest -n 2 --dist loadfile

lint: $(INSTALLED)
	$(VENV)/bin/ruff check em3 tests

lock: $(INSTALLED)  ## refresh requirements.lock from the current environment
	$(PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements.lock

clean:
	rm -rf runs .pytest_cache
