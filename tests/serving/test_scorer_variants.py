"""The scorer (what the MLflow Model and `em3 score` run) against em3's own prediction for every variant and both
backbones (and the history-similarity inputs), trained on the same tables: item vectors looked up must give what
Ranker.forward computes; new items score from their content in each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from em3.pyfunc.catalogue import build_catalogue
from em3.pyfunc.scorer import Scorer
from em3.train import train
from em3.train.trainer import predict
from tests.conftest import with_updates
from tests.serving.conftest import ATOL, contract_rows, store_of_copies


@pytest.mark.parametrize(
    ("variant", "backbone", "extra"),
    [
        ("id_only", "din", {}),
        ("two_stage", "dcn", {}),
        ("em3", "dcn", {"history_mode": "full", "content_cache_every": 0}),
        ("em3", "din", {"history_similarity": True}),
    ],
)
def test_scorer_matches_em3s_prediction(served, tmp_path, variant, backbone, extra):
    model_settings = {"variant": variant, "backbone": backbone, **extra}
    cfg = with_updates(served.cfg, output_dir=tmp_path / "run", model=model_settings)
    model = train(cfg, served.data, test=False).model.eval()
    scorer = Scorer(model, build_catalogue(model, cfg), batch_size=50)
    scores = scorer.score(contract_rows(served))
    assert (scores.reason == "").all() and scores.known_user.all() and not scores.cold_item.any()
    own = torch.sigmoid(torch.from_numpy(predict(model, served.data.test, served.data, 64))).double()
    torch.testing.assert_close(torch.from_numpy(scores.score), own, rtol=0, atol=ATOL)
    scorer.use_store(served.new_items)
    new = scorer.score(contract_rows(served).head(2).assign(item_id=["new-a", "new-b"]))
    assert new.cold_item.all() and np.isfinite(new.score).all()


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_an_item_first_met_when_serving_scores_as_evaluation_scored_it(served, tmp_path, variant):
    """An item of the catalogue that training never showed gets its ID from its content when training ends, and the
    evaluation scores it so; the same item arriving at scoring time under a new id, with its content, must get the
    same score: the content -> ID map is saved with the model. Scored through the same backbone from the same
    float32 vectors, the two agree up to ATOL (float32 rounding of one more matrix product)."""
    cfg = with_updates(served.cfg, output_dir=tmp_path / "run", model={"variant": variant})
    model = train(cfg, served.data, test=False).model.eval()
    seen = set(served.data.train.item.tolist())
    rows = contract_rows(served)
    items = pd.read_parquet(cfg.data.tables_dir / "items.parquet")
    index = {item: row for row, item in enumerate(items["item_id"])}
    unseen = [(n, item) for n, item in enumerate(rows["item_id"]) if index[item] + 1 not in seen]
    assert unseen, "the tiny log's test split has items that training never showed"
    n, item = unseen[0]
    assert model.content_to_id.abs().sum() > 0, "training fitted the map"
    scorer = Scorer(model, build_catalogue(model, cfg), batch_size=50)
    scorer.use_store(store_of_copies(cfg, tmp_path / "arrivals", [index[item]], ["arrives-later"]))
    both = scorer.score(pd.concat([rows.iloc[[n]], rows.iloc[[n]].assign(item_id="arrives-later")]))
    assert list(both.cold_item) == [False, True]
    evaluated = torch.sigmoid(torch.from_numpy(predict(model, served.data.test, served.data, 64)))[n].double()
    torch.testing.assert_close(torch.from_numpy(both.score), evaluated.repeat(2), rtol=0, atol=ATOL)
