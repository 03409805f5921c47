"""The co-engagement objective (issue 25, em3's addition beyond the paper): every model with a content tower can
train with it, it pairs each positive row's item with the user's previous positive (or a window of earlier ones), and
it reaches the tower."""

import pytest
import torch

from em3.config import EM3_OBJECTIVE_WEIGHTS
from em3.data.dataset import make_batch
from em3.losses import coengagement_loss
from em3.models import Ranker
from em3.train.trainer import model_shapes
from tests.conftest import with_updates

CONTENT_VARIANTS = {
    "em3": {"variant": "em3"},
    "em3_mean_fusion": {"variant": "em3", "fusion": "mean"},
    "two_stage": {"variant": "two_stage"},
    "two_stage_mlp": {"variant": "two_stage", "pooled_projection": "mlp"},
}


def ranker(small_config, small_data, **model) -> Ranker:
    torch.manual_seed(0)
    no_other = {"modality_dropout": 0.0, "content_cache_every": 0, "neighbourhood_weight": 0.0}  # unless asked
    cfg = with_updates(small_config, model={**no_other, **model})
    return Ranker(cfg.model, model_shapes(small_data)).train()


@pytest.mark.parametrize("variant", CONTENT_VARIANTS)
def test_the_loss_is_the_pairs_of_positive_rows_and_their_previous_positive(small_config, small_data, variant):
    model = ranker(small_config, small_data, coengagement_weight=0.5, **CONTENT_VARIANTS[variant])
    batch = make_batch(small_data.train, torch.arange(256), small_data.store, model.content_inputs)
    _, losses = model(batch)
    previous = batch.history[:, 0]
    pairs = (batch.label > 0) & (previous != 0) & (previous != batch.item)
    assert 2 <= int(pairs.sum()) < len(pairs), "the batch has pairs, and rows that are not"
    content = model._target_content(batch)[batch.target_pos][pairs]
    partner = model._history_content(batch)[batch.history_pos][pairs, 0]
    expected = coengagement_loss(content, partner, batch.item[pairs], previous[pairs], temperature=0.1)
    assert losses["coengagement"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(
        losses["bce"].item() + 0.1 * losses.get("cic", torch.tensor(0.0)).item() + 0.5 * expected.item(), rel=1e-5
    )


def test_a_window_pairs_each_positive_with_the_users_latest_earlier_positives(small_config, small_data):
    model = ranker(small_config, small_data, coengagement_weight=0.5, coengagement_window=3)
    batch = make_batch(small_data.train, torch.arange(256), small_data.store, model.content_inputs)
    _, losses = model(batch)
    content = model._target_content(batch)[batch.target_pos]
    history = model._history_content(batch)[batch.history_pos]
    pairs = [
        (row, slot)
        for row in range(len(batch.label))
        for slot in range(3)
        if batch.label[row] > 0 and batch.history[row, slot] not in (0, batch.item[row])
    ]
    assert any(slot == 2 for _, slot in pairs) and len(pairs) > int(
        ((batch.label > 0) & (batch.history[:, 0] != 0)).sum()
    )
    rows, slots = torch.tensor(pairs).T
    expected = coengagement_loss(
        content[rows], history[rows, slots], batch.item[rows], batch.history[rows, slots], temperature=0.1
    )
    assert losses["coengagement"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("variant", CONTENT_VARIANTS)
def test_its_gradient_reaches_the_content_tower(small_config, small_data, variant):
    model = ranker(small_config, small_data, coengagement_weight=1.0, cic_weight=0.0, **CONTENT_VARIANTS[variant])
    batch = make_batch(small_data.train, torch.arange(256), small_data.store, model.content_inputs)
    model(batch)[1]["coengagement"].backward()
    tower = [p.grad for p in model.content.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in tower)
    assert model.backbone.parameters().__next__().grad is None, "the objective reads content only"


@pytest.mark.parametrize("objective", ["coengagement", "neighbourhood"])
def test_each_objective_follows_its_variants_default_and_zero_or_no_content_tower_turns_it_off(
    small_config, small_data, objective
):
    """em3 trains with each objective at its chosen weight (co-engagement 0 since neighbourhood keeping: off),
    two_stage without it unless told, and a model without a content tower never."""
    other = {"coengagement": "neighbourhood", "neighbourhood": "coengagement"}[objective]
    cases = {
        ("em3", None): EM3_OBJECTIVE_WEIGHTS[f"{objective}_weight"],
        ("two_stage", None): 0.0,
        ("two_stage", 0.5): 0.5,
        ("em3", 0.7): 0.7,
        ("em3", 0.0): 0.0,
        ("id_only", 1.0): 0.0,
    }
    for (variant, weight), used in cases.items():
        weights = {f"{objective}_weight": weight, f"{other}_weight": 0.0}
        model = ranker(small_config, small_data, variant=variant, **weights)
        batch = make_batch(small_data.train, torch.arange(64), small_data.store, model.content_inputs)
        losses = model(batch)[1]
        assert (objective in losses) == (used > 0), (variant, weight)
        if used:
            expected = losses["bce"] + model.cfg.cic_weight * losses.get("cic", 0) + used * losses[objective]
            assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
