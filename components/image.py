"""The container images of every component, named here only (``make image`` and ``make image-cuda`` read them too).

Set them for your registry when building and compiling, e.g. ``export EM3_IMAGE=registry.example.com/em3:0.1.0``,
then ``make image && docker push $EM3_IMAGE`` and ``em3 pipeline compile``. EM3_GPU_IMAGE defaults to EM3_IMAGE
with ``-cuda``. ``em3 pipeline run --local --runner docker`` runs every task, train too, in EM3_IMAGE.
"""

import os

EM3_IMAGE = os.environ.get("EM3_IMAGE") or "ghcr.io/em3-project/em3:0.1.0"  # Dockerfile (CPU PyTorch)
EM3_GPU_IMAGE = os.environ.get("EM3_GPU_IMAGE") or f"{EM3_IMAGE}-cuda"  # Dockerfile.cuda: the train step
