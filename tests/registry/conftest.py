"""Two tiny trained runs shared by the registry tests, ordered best test AUC first."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from em3.config import Config
from em3.models import Ranker
from em3.train import train
from em3.train.trainer import predict
from tests.conftest import with_updates

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass
class Trained:
    cfg: Config
    run_dir: Path
    model: Ranker
    test: dict


@pytest.fixture(scope="session")
def trained_runs(small_config, small_data, tmp_path_factory) -> list[Trained]:
    """One epoch each (so there is a validation history) with different seeds; best test AUC first."""
    runs = []
    for seed in (0, 1):
        run_dir = tmp_path_factory.mktemp(f"run{seed}")
        cfg = with_updates(
            small_config, name=f"seed{seed}", seed=seed, output_dir=run_dir, train={"batch_size": 2048, "epochs": 1}
        )
        result = train(cfg, small_data)
        runs.append(Trained(cfg, run_dir, result.model.eval(), result.metrics["test"]))
    runs.sort(key=lambda run: run.test["auc"], reverse=True)
    assert runs[0].test["auc"] > runs[1].test["auc"], "the two seeds must give different test AUCs"
    return runs


def with_registry(cfg: Config, root: Path, **registry) -> Config:
    """``cfg`` tracking to a SQLite store and artifact folder under ``root`` (no gate threshold unless given)."""
    settings = {
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "artifact_location": str(root / "artifacts"),
        "min_auc": 0.0,
        **registry,
    }
    return with_updates(cfg, registry=settings)


def assert_same_predictions(loaded: Ranker, trained: Trained, data) -> None:
    test = data.test.rows(torch.arange(64))
    torch.testing.assert_close(predict(loaded, test, data, 32), predict(trained.model, test, data, 32), rtol=0, atol=0)
