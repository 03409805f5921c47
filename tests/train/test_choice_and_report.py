"""One rule for choosing and reporting a model (issue 22, point 2): each epoch's validation reads the model as
training will report it (items no training row showed get their ID from their content), so the chosen epoch's
validation AUC is the finished model's, and that pass leaves the training itself untouched."""

import pytest
import torch

from em3.train import train
from em3.train.trainer import seen_in_training
from tests.conftest import with_updates


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_the_chosen_epochs_validation_auc_is_the_reported_models(small_config, small_data, tmp_path, variant):
    assert not seen_in_training(small_data)[1:].all(), "some items need their ID from content, else nothing to test"
    cfg = with_updates(small_config, output_dir=tmp_path, model={"variant": variant}, train={"epochs": 3})
    metrics = train(cfg, small_data, test=False).metrics
    chosen = metrics["valid_history"][metrics["best_epoch"]]
    # the same weights, the same fill and the same batches: the same logits, so exactly the same AUC
    assert metrics["valid"]["auc"] == chosen["auc"] and metrics["valid"]["logloss"] == chosen["logloss"]


def test_validating_the_filled_model_leaves_the_training_as_it_was(small_config, small_data, tmp_path):
    """Patience as long as the run: both runs train every epoch, whatever their validation says."""
    runs = {}
    for fill in (True, False):
        cfg = with_updates(
            small_config,
            output_dir=tmp_path / str(fill),
            model={"unseen_ids_from_content": fill},
            train={"epochs": 3, "patience": 3},
        )
        runs[fill] = train(cfg, small_data, test=False).metrics
        assert runs[fill]["stopped_by"] == "epochs"
    states = [
        torch.load(tmp_path / str(fill) / "checkpoints" / "last.pt", weights_only=True)["model"]
        for fill in (True, False)
    ]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    filled, unfilled = (runs[fill]["valid_history"] for fill in (True, False))
    assert [h["auc"] for h in filled] != [h["auc"] for h in unfilled], "the fill changes what validation reads"
