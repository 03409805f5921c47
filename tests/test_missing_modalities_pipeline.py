"""The whole chain on a catalogue with missing modalities (issue 11): a tiny H&M-layout source where half the articles
lost their articles.csv row (photo only) and some others their photo (text only) → ingest keeps every purchase →
validate passes → features masks what is missing (real encoders) → em3 and two_stage train and predict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from em3.config import parse_config
from em3.data.loading import load_data
from em3.features import features_from_tables
from em3.ingest import run_ingest
from em3.train import train
from em3.validation import run_validate
from em3.validation.contract import read_interactions
from tests.data.conftest import HM_SPLIT, write_tiny_hm


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("missing_modalities")
    raw = write_tiny_hm(root / "raw")
    articles = pd.read_csv(raw / "articles.csv", dtype=str)
    articles.iloc[::2].to_csv(raw / "articles.csv", index=False)  # the odd articles keep only their photo
    for article in articles["article_id"].iloc[0::4]:  # some articles with a row lose their photo: text only
        (raw / "images" / article[:3] / f"{article}.jpg").unlink()
    cfg = parse_config(
        {
            "ingest": {"source": str(raw), "negatives_per_positive": 2, **HM_SPLIT},
            "data": {
                "source": "tables",
                "tables_dir": str(root / "tables"),
                "validation_dir": str(root / "validation"),
                "store_dir": str(root / "store"),
            },
            "features": {"progress": False, "device": "cpu", "batch_size": 8},
            "train": {"max_steps": 4, "batch_size": 16, "progress": False, "device": "cpu"},
        }
    )
    manifest = run_ingest(cfg.ingest, cfg.data.tables_dir)
    run_validate(cfg.validation, cfg.data.tables_dir, cfg.data.validation_dir, cfg.ingest.source)
    return root, cfg, manifest, features_from_tables(cfg)


def test_every_purchase_is_kept_and_the_store_masks_what_is_missing(prepared):
    _, cfg, manifest, report = prepared
    interactions = read_interactions(cfg.data.tables_dir).to_pandas()
    assert interactions["item_id"].nunique() == 12, "photo-only and text-only articles keep their purchases"
    assert report["items"] == 12
    assert report["image"]["missing"] == {"no_image": 3} and report["text"]["missing"] == {"empty_text": 6}


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_both_variants_train_and_predict_on_it(prepared, variant):
    root, cfg, _, _ = prepared
    run_cfg = cfg.model_copy(
        update={"model": cfg.model.model_copy(update={"variant": variant}), "output_dir": root / variant}
    )
    result = train(run_cfg, load_data(run_cfg))
    metrics = json.loads((root / variant / "metrics" / "train.json").read_text())
    assert metrics["steps"] == 4 and metrics["inputs"]["modalities"] == {"image": True, "text": True}
    assert "user.age" in metrics["inputs"]["numeric"] and metrics["inputs"]["history"] == "earlier_days"
    for split in ("valid", "test"):
        assert np.isfinite(result.metrics[split]["logloss"])
