# The em3 image of the Kubeflow components (CPU PyTorch). Build it with `make image` (tag: em3/cluster.py,
# EM3_IMAGE), or by hand from the repository root:
#   docker build --build-arg VERSION=0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t REGISTRY/em3:0.1.0 .
# BASE_IMAGE: any Python 3.11 image with venv (Debian or Ubuntu). Torch: a torch-*.whl in ./wheels/ when present
# (`make image` downloads it), else torch==2.13.0 from TORCH_INDEX_URL. The build stage installs em3 as a wheel
# with its locked dependencies (kfp among them: components use install_kfp_package=False); the final stage gets
# only that virtualenv: no build tools, pip caches, tests or data.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CACHE=1 UV_NATIVE_TLS=1 UV_PYTHON=/opt/venv/bin/python
# uv (in its own virtualenv, left in this stage) installs in parallel: this build is in CI's time budget.
RUN python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), f"BASE_IMAGE needs Python 3.11: {sys.version}"' \
 && python3 -m venv /opt/venv && python3 -m venv /opt/uv && /opt/uv/bin/pip install --quiet uv==0.13.9
ENV PATH=/opt/uv/bin:$PATH
WORKDIR /src
# Dependencies first, so that their layer survives code changes: the CPU torch alone, then the rest from PyPI.
COPY requirements.lock pyproject.toml wheel[s] ./
RUN if ls torch-*.whl >/dev/null 2>&1; then uv pip install --no-deps torch-*.whl; \
    else uv pip install --no-deps --index-url "$TORCH_INDEX_URL" torch==2.13.0; fi \
 && uv pip install --compile-bytecode -c requirements.lock -r pyproject.toml \
 && find /opt/venv -type d \( -name tests -o -path '*/torch/test' \) -prune -exec rm -rf {} +
COPY README.md ./
# The suite files (data_validation/), which the wheel carries through the link em3/validation/data_validation.
COPY data_validation ./data_validation
COPY em3 ./em3
COPY components ./components
COPY pipelines ./pipelines
RUN uv build --wheel --out-dir dist . && uv pip install --no-deps --compile-bytecode dist/em3-*.whl

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 GX_ANALYTICS_ENABLED=false \
    MLFLOW_ENABLE_TELEMETRY=false PATH=/opt/venv/bin:$PATH HOME=/home/em3
# A non-root user with a numeric id (Kubernetes runAsNonRoot checks it); its home is writable by any uid, for
# `docker run --user` (kfp.local runs tasks as the calling user) and clusters that assign one.
RUN groupadd --gid 10001 em3 && useradd --uid 10001 --gid 10001 --home-dir /home/em3 --create-home em3 \
 && chmod 1777 /home/em3
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/em3
ARG VERSION=0.1.0
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="em3" \
      org.opencontainers.image.description="EM3 multimodal ranking: the Kubeflow components (CPU PyTorch)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
