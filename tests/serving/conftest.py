"""A registered model trained on tables, as the demo makes them (raw synthetic data → ingest → validate → features
with the real encoders → train), small enough to build in about 20 s; and a store of two items it never saw."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from em3.config import Config, parse_config
from em3.data.dataset import RankingData
from em3.data.loading import load_data
from em3.data.synthetic_hm import generate_raw_synthetic
from em3.features import run_features
from em3.ingest import run_ingest
from em3.models import Ranker
from em3.registry import log_run, register
from em3.train import train
from em3.validation import run_validate
from em3.validation.contract import SPLITS, SplitRule, read_interactions
from tests.pipelines.conftest import TINY as PIPELINE_TINY

# Scores are float32 computations of the same weights on the same inputs; only the grouping differs (item vectors
# for the whole catalogue at once instead of per batch, other batch shapes), which changes the summation order
# of matrix products: a relative error of a few float32 epsilons (6e-8) per layer on sums of at most a few hundred
# terms of size <= 1, i.e. well under 1e-5 on a logit, and a probability moves at most a quarter of that
# (sigmoid' <= 1/4). The bound does not depend on the CPU's vector width (Intel or AMD kernels).
ATOL = 1e-5

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

TINY = {**PIPELINE_TINY, "score": {"device": "cpu", "progress": False, "chunk_rows": 200, "batch_size": 64}}


@dataclass
class Served:
    cfg: Config  # the run's config with the registry under root
    root: Path
    data: RankingData
    model: Ranker
    run_id: str
    new_items: Path  # token store of two items the model never saw (different photos and texts), and a twin


def tiny_config(root: Path) -> Config:
    values = {
        **TINY,
        "name": "em3_din",
        "output_dir": str(root / "run"),
        "ingest": {"source": str(root / "raw")},
        "data": {
            "source": "tables",
            "tables_dir": str(root / "tables"),
            "store_dir": str(root / "store"),
            "validation_dir": str(root / "validation"),
        },
        "registry": {
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
            "min_auc": 0.0,
        },
    }
    return parse_config(values, "tests/serving/conftest.py")


def new_items_store(cfg: Config, root: Path, features=None) -> Path:
    """Three items unknown to the model: two with the photo and text of two different catalogue items, and a twin
    of the first (same content, another id)."""
    return store_of_copies(cfg, root / "new", [0, 1, 0], ["new-a", "new-b", "new-a-twin"], features)


def store_of_copies(cfg: Config, folder: Path, rows: list[int], new_ids: list[str], features=None) -> Path:
    """A token store (``folder/store``) of the catalogue items at ``rows`` of items.parquet under ``new_ids``, with
    their photos and texts."""
    items = pd.read_parquet(cfg.data.tables_dir / "items.parquet").iloc[rows].reset_index(drop=True)
    items["item_id"] = new_ids
    for path in items["image_path"]:
        if path:
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cfg.data.tables_dir / path, folder / path)
    run_features(features or cfg.features, items, folder, folder / "store")
    return folder / "store"


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    root = tmp_path_factory.mktemp("served")
    cfg = tiny_config(root)
    generate_raw_synthetic(cfg.raw_synthetic, root / "raw")
    run_ingest(cfg.ingest, cfg.data.tables_dir)
    run_validate(cfg.validation, cfg.data.tables_dir, cfg.data.validation_dir)
    items = pd.read_parquet(cfg.data.tables_dir / "items.parquet")
    run_features(cfg.features, items, cfg.data.tables_dir, cfg.data.store_dir)
    data = load_data(cfg)
    result = train(cfg, data)
    run_id = log_run(cfg, cfg.output_dir, data_hash="tiny")
    assert register(cfg, run_id)["alias"] == "champion"
    return Served(cfg, root, data, result.model.eval(), run_id, new_items_store(cfg, root))


def contract_rows(served: Served) -> pd.DataFrame:
    """The test split's rows as the data contract gives them (no label), in the order of data.test."""
    table = read_interactions(served.cfg.data.tables_dir).to_pandas()
    split = SplitRule.of_tables(served.cfg.data.tables_dir).codes(table["ts"].to_numpy())
    rows = table[split == SPLITS.index("test")].reset_index(drop=True)
    return pd.DataFrame(
        {
            "user_id": rows["user_id"],
            "item_id": rows["item_id"],
            "ts": pd.to_datetime(rows["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "sales_channel_id": rows["sales_channel_id"].astype("int64"),
        }
    )


def own_scores(served: Served) -> torch.Tensor:
    """em3's own prediction (em3.train.trainer.predict) of the test split, as probabilities."""
    from em3.train.trainer import predict

    return torch.sigmoid(torch.from_numpy(predict(served.model, served.data.test, served.data, 64))).double()


def new_items_file(served, folder) -> None:
    """items.csv for new-a and new-b (the photos and texts of two catalogue items), photos beside it."""
    items = pd.read_parquet(served.cfg.data.tables_dir / "items.parquet").iloc[[0, 1]].reset_index(drop=True)
    for path in items["image_path"]:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(served.cfg.data.tables_dir / path, folder / path)
    items.assign(item_id=["new-a", "new-b"])[["item_id", "text", "image_path"]].to_csv(
        folder / "items.csv", index=False
    )


def log_with_new_items(served: Served, folder: Path, known_rows: int) -> pd.DataFrame:
    """``known_rows`` test rows plus three rows of items the model never saw: two whose content is in the items
    file written to ``folder`` (new-a, new-b) and one with no content anywhere (never-seen)."""
    folder.mkdir()
    new_items_file(served, folder)
    rows = contract_rows(served).head(known_rows)
    return pd.concat([rows, rows.head(3).assign(item_id=["new-a", "new-b", "never-seen"])], ignore_index=True)
