"""What em3's Kubernetes workloads share: the Kubeflow pipeline (pipelines/em3_pipeline.py) and the multi-node
training job (em3/train/pytorchjob.py). Credentials only ever come from these secrets, as environment variables."""

S3_SECRET = "em3-s3"
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
MLFLOW_SECRET = "em3-mlflow"
MLFLOW_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")  # set by NVIDIA's GPU feature discovery on GPU nodes
CPU_PER_GPU, MEMORY_GIB_PER_GPU = 4, 16  # requests of a training pod, per GPU it trains on
