"""Kubeflow Pipelines v2 components of em3: one lightweight component per stage, each a thin call into ``em3``."""

from components.data import features, generate, ingest, validate
from components.model import evaluate, register, train

__all__ = ["evaluate", "features", "generate", "ingest", "register", "train", "validate"]
