# The em3 image for the Kubeflow components (CPU PyTorch). Build from the repository root:
#   docker build -t REGISTRY/em3:0.1.0 .
# then compile the pipeline against it: EM3_IMAGE=REGISTRY/em3:0.1.0 em3 pipeline compile
# BASE_IMAGE: any Python 3.11 image with pip and venv. TORCH_INDEX_URL: where the CPU torch wheel comes from (a
# torch-*.whl in ./wheels/, e.g. from `pip download --no-deps torch==2.13.0 -d wheels`, is used first when present).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 GX_ANALYTICS_ENABLED=false MLFLOW_ENABLE_TELEMETRY=false \
    PATH=/opt/venv/bin:$PATH
RUN python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
 && python3 -m venv /opt/venv
WORKDIR /opt/em3

# Dependencies first (their layer survives code changes): torch, then em3's locked requirements via a stub package.
COPY requirements.lock pyproject.toml README.md wheel[s] ./
RUN if ls torch-*.whl >/dev/null 2>&1; then pip install torch-*.whl; \
    else pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0; fi \
 && mkdir em3 && touch em3/__init__.py \
 && pip install -c requirements.lock . \
 && rm -rf em3 ./*.whl
COPY em3 ./em3
RUN pip install --no-deps --force-reinstall . && python3 -c 'import em3.pipeline, kfp, torch'
