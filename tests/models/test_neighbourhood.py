"""Neighbourhood keeping (issue 25, beyond the paper): every model with a content tower can keep the frozen content's
in-batch neighbourhoods in its content embedding; the frozen space is material similarity's."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import em3.models.ranker as ranker_module
from em3.data.content_similarity import unit_concat
from em3.data.dataset import ContentInputs, make_batch
from em3.losses import neighbourhood_loss
from em3.models.content import drop_modalities, frozen_space
from tests.models.test_coengagement import CONTENT_VARIANTS, ranker


def test_the_frozen_space_is_material_similaritys(small_data):
    store = small_data.store
    batch = make_batch(small_data.train, torch.arange(256), store, ContentInputs("pooled"))
    dims = (store.image_dim, store.text_dim)
    present = batch.target_content.present.clone()
    present[::3, 1] = False  # the masks say: no text (whatever the pooled vector holds)
    present[1::3, 0] = False
    content = replace(batch.target_content, present=present)
    image, text = (
        np.where(content.present[:, [m]].numpy(), part.float().numpy(), 0)
        for m, part in enumerate(content.pooled.split(dims, dim=-1))
    )
    np.testing.assert_allclose(frozen_space(content, dims).numpy(), unit_concat(image, text), atol=1e-6)


@pytest.mark.parametrize("variant", CONTENT_VARIANTS)
def test_the_loss_reads_the_batchs_unique_targets_and_reaches_only_the_tower(small_config, small_data, variant):
    model = ranker(
        small_config,
        small_data,
        neighbourhood_weight=0.5,
        cic_weight=0.0,
        coengagement_weight=0.0,
        **CONTENT_VARIANTS[variant],
    )
    batch = make_batch(small_data.train, torch.arange(256), small_data.store, model.content_inputs)
    _, losses = model(batch)
    dims = (model.shapes.image_dim, model.shapes.text_dim)
    expected = neighbourhood_loss(model._target_content(batch), frozen_space(batch.target_content, dims), 0.1)
    assert losses["neighbourhood"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(losses["bce"].item() + 0.5 * expected.item(), rel=1e-5)
    losses["neighbourhood"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.content.parameters())
    assert next(model.backbone.parameters()).grad is None


def test_a_model_that_keeps_neighbourhoods_predicts_from_its_content_cache(small_config, small_data):
    model = ranker(small_config, small_data, neighbourhood_weight=1.0, content_cache_every=50).eval()
    model.refresh_content_cache(small_data.store)
    assert model.has_content_cache and model.prediction_inputs.target is None
    batch = make_batch(small_data.valid, torch.arange(64), small_data.store, model.prediction_inputs)
    with torch.no_grad():
        logits, losses = model(batch)
    assert logits.shape == (64,) and torch.isfinite(logits).all() and "neighbourhood" not in losses


def test_the_kept_neighbourhoods_are_those_of_the_content_before_modality_dropout(
    small_config, small_data, monkeypatch
):
    """Modality dropout hides a modality from the tower, not from the target: the frozen space the loss keeps is the
    item's whole content, so an item shown without its text still learns where its text and photo put it."""
    targets = []

    def recording(content, frozen, temperature):
        targets.append(frozen)
        return neighbourhood_loss(content, frozen, temperature)

    monkeypatch.setattr(ranker_module, "neighbourhood_loss", recording)
    model = ranker(small_config, small_data, neighbourhood_weight=0.5, modality_dropout=1.0, coengagement_weight=0)
    batch = make_batch(small_data.train, torch.arange(256), small_data.store, model.content_inputs)
    dims = (model.shapes.image_dim, model.shapes.text_dim)
    assert batch.target_content.present.all(-1).sum() >= 3, "items with both modalities: rate 1 drops one of each"
    model(batch)
    (kept,) = targets
    torch.testing.assert_close(kept, frozen_space(batch.target_content, dims))
    assert not torch.allclose(kept, frozen_space(drop_modalities(batch.target_content, 1.0, dims), dims))
