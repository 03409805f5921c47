"""Training kept outside the model: optimiser, checkpoints, the loop and prediction."""

from em3.train.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
