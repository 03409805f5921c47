"""The container images of every component, named here only. Override them when compiling:
``EM3_IMAGE=registry.example.com/em3:0.1.0 EM3_GPU_IMAGE=registry.example.com/em3:0.1.0-cuda em3 pipeline compile``.
"""

import os

EM3_IMAGE = os.environ.get("EM3_IMAGE", "ghcr.io/em3-project/em3:0.1.0")  # Dockerfile (CPU PyTorch)
EM3_GPU_IMAGE = os.environ.get("EM3_GPU_IMAGE", f"{EM3_IMAGE}-cuda")  # Dockerfile.cuda: the train step
