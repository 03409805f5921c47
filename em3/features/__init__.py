"""The `features` stage: frozen image and text encoders -> the per-item token store (em3.data.token_store)."""

from em3.features.extract import run_features

__all__ = ["run_features"]
