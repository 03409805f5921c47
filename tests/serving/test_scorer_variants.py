"""The scorer (what the MLflow Model and `em3 score` run) against em3's own prediction for every variant and both
backbones (and the history-similarity inputs), trained on the same tables: item vectors looked up must give what
Ranker.forward computes; new items score from their content in each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from em3.serving.catalogue import build_catalogue
from em3.serving.scorer import Scorer
from em3.train import train
from em3.train.trainer import predict
from tests.conftest import with_updates
from tests.serving.conftest import ATOL, contract_rows


@pytest.mark.parametrize(("variant", "backbone", "extra"), [
    ("id_only", "din", {}),
    ("two_stage", "dcn", {}),
    ("em3", "dcn", {"history_mode": "full", "content_cache_every": 0}),
    ("em3", "din", {"history_similarity": True}),
])  # fmt: skip
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
