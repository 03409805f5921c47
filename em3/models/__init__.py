"""Item content towers, the history branch, the backbones and the ranker."""

from em3.models.ranker import ModelShapes, Ranker

__all__ = ["ModelShapes", "Ranker"]
