"""What em3's Kubernetes workloads share: the Kubeflow pipeline (pipelines/em3_pipeline.py) and the multi-node
training job (em3/train/pytorchjob.py). Credentials only ever come from these secrets, as environment variables.

The container images of every component are named here only (``make image`` and ``make image-cuda`` read them
too). Set them for your registry when building and compiling, e.g.
``export EM3_IMAGE=registry.example.com/em3:0.1.0``, then ``make image && docker push $EM3_IMAGE`` and
``em3 pipeline compile``. EM3_GPU_IMAGE defaults to EM3_IMAGE with ``-cuda``. ``em3 pipeline run --local --runner
docker`` runs every task, train too, in EM3_IMAGE.
"""

import os

EM3_IMAGE = os.environ.get("EM3_IMAGE") or "ghcr.io/em3-project/em3:0.1.0"  # Dockerfile (CPU PyTorch)
EM3_GPU_IMAGE = os.environ.get("EM3_GPU_IMAGE") or f"{EM3_IMAGE}-cuda"  # Dockerfile.cuda: the train step
S3_SECRET = "em3-s3"
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
MLFLOW_SECRET = "em3-mlflow"
MLFLOW_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")  # set by NVIDIA's GPU feature discovery on GPU nodes
CPU_PER_GPU, MEMORY_GIB_PER_GPU = 4, 16  # requests of a training pod, per GPU it trains on
