# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing: torch 2.13.0 (CPU) first, then the project with its locked dependencies.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_TELEMETRY := false

.PHONY: install demo test test-slow test-all test-containers image image-cuda image-cuda-base lint lock clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

demo: $(INSTALLED)  ## synthetic data → the whole Kubeflow pipeline locally (kfp.local) → summary table
	$(PY) -m em3 demo

test: $(INSTALLED)  ## the default suite (slow checks excluded), two processes
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow and not container"

test-slow: $(INSTALLED)  ## the slow checks only (SIGKILL + resume, DDP vs one process, register races, ...)
	$(PY) -m pytest -n 2 --dist loadfile -m "slow and not container"

test-all: $(INSTALLED)  ## every check but the container stage (`make test-containers`)
	$(PY) -m pytest -n 2 --dist loadfile -m "not container"

# The component images. Their tags are set in one place, em3/cluster.py (EM3_IMAGE, EM3_GPU_IMAGE); build
# and push for a registry with `make image EM3_IMAGE=registry.example.com/em3:0.1.0 && docker push ...`.
IMAGE_NAME = $(PYTHON) -c 'import runpy; print(runpy.run_path("em3/cluster.py")["$(1)"])'
EM3_IMAGE ?= $(shell $(call IMAGE_NAME,EM3_IMAGE))
EM3_GPU_IMAGE ?= $(shell EM3_IMAGE=$(EM3_IMAGE) $(call IMAGE_NAME,EM3_GPU_IMAGE))
BASE_IMAGE ?= python:3.11-slim-bookworm
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
IMAGE_LABELS = --build-arg VERSION=$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) \
	--build-arg GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null || echo unknown)

image: wheels/.torch-2.13.0  ## the CPU component image EM3_IMAGE (BASE_IMAGE: a Python 3.11 image)
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) $(IMAGE_LABELS) -t $(EM3_IMAGE) .

image-cuda:  ## the train step's image EM3_GPU_IMAGE (CUDA_BASE_IMAGE: Dockerfile.cuda's default; not built by CI)
	docker build -f Dockerfile.cuda $(if $(CUDA_BASE_IMAGE),--build-arg BASE_IMAGE=$(CUDA_BASE_IMAGE)) $(IMAGE_LABELS) \
		-t $(EM3_GPU_IMAGE) .

# Where the pytorch/pytorch image cannot be pulled: BASE_IMAGE plus PyPI's torch 2.13.0 for Linux, which is the CUDA
# build with its CUDA libraries as nvidia-* wheels (about 5 GB), then `make image-cuda CUDA_BASE_IMAGE=$(TORCH_CUDA_BASE)`.
TORCH_CUDA_BASE ?= localhost/torch-cuda:2.13.0
image-cuda-base:  ## a CUDA torch base TORCH_CUDA_BASE for image-cuda, from BASE_IMAGE and PyPI
	printf 'ARG BASE_IMAGE\nFROM $${BASE_IMAGE}\nRUN python3 -m pip install --no-cache-dir --break-system-packages torch==2.13.0\n' \
		| docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(TORCH_CUDA_BASE) -

wheels/.torch-2.13.0:  # the CPU torch wheel, installed in the image from the build context
	$(PYTHON) -m pip download -qq --no-deps --index-url $(TORCH_INDEX_URL) --dest $(@D) torch==2.13.0
	touch $@

test-containers: $(INSTALLED) image  ## the container stage: the whole pipeline in EM3_IMAGE (needs a Docker engine)
	EM3_IMAGE=$(EM3_IMAGE) $(PY) -m pytest -m container --durations=5 tests/pipelines

.PHONY: bench-scale
bench-scale: $(INSTALLED)  ## scale benchmark: ingest → validate → features → train at 10k, 100k, 1M impressions (~20 min)
	nice -n 15 $(PY) bench/scale.py

lint: $(INSTALLED)  ## every Python folder linted; formatted too, but components/ (pyproject.toml says why)
	$(VENV)/bin/ruff check em3 tests bench components pipelines
	$(VENV)/bin/ruff format --check em3 tests bench components pipelines

lock: $(INSTALLED)  ## refresh requirements.lock from the current environment
	$(PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements.lock

clean:
	rm -rf runs .pytest_cache
