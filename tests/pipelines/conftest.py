"""The tiny config the pipeline tests share: raw synthetic data, the real encoders and training in seconds."""

from pathlib import Path

from em3.config import Config, parse_config
from tests.conftest import SMALL_MODEL

TINY = {
    "raw_synthetic": {
        "n_users": 60,
        "n_items": 80,
        "n_purchases": 800,
        "n_days": 60,
        "late_release_days": 10,
        "image_size": 64,
    },
    "features": {"image_size": 64, "batch_size": 16, "decode_workers": 1, "device": "cpu", "progress": False},
    "model": SMALL_MODEL,
    "train": {"epochs": 1, "batch_size": 256, "device": "cpu", "progress": False},
    "evaluate": {"device": "cpu"},
}


def tiny_config(root: Path, **registry) -> Config:
    """TINY with MLflow on SQLite under ``root`` and no AUC threshold unless given."""
    settings = {
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "artifact_location": str(root / "artifacts"),
        "min_auc": 0.0,
        **registry,
    }
    return parse_config({**TINY, "registry": settings}, "tests/pipelines/conftest.py")
