"""The `features` stage: frozen image and text encoders -> the per-item token store (em3.data.token_store)."""

from em3.features.extract import run_features
from em3.features.stage import features_from_tables

__all__ = ["features_from_tables", "run_features"]
