"""Items that training never showed get an ID embedding predicted from their content (em3.models.item_tables)."""

import numpy as np
import pytest
import torch

from em3.models import Ranker
from em3.models.item_tables import fill_unseen_item_ids, item_embedding_tables, ridge_fit
from em3.train.trainer import model_shapes
from tests.conftest import with_updates


def ranker(small_config, small_data, variant: str) -> Ranker:
    torch.manual_seed(0)
    return Ranker(with_updates(small_config, model={"variant": variant}).model, model_shapes(small_data)).eval()


def test_ridge_fit_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    inputs, weights, bias = rng.normal(size=(400, 6)), rng.normal(size=(6, 3)), rng.normal(size=3)
    fitted = ridge_fit(inputs, inputs @ weights + bias, ridge=1e-9)
    np.testing.assert_allclose(fitted, np.vstack([weights, bias]), atol=1e-8)  # float64, well conditioned


@pytest.mark.parametrize("variant", ["two_stage", "em3"])
def test_unseen_items_get_the_content_to_id_map_fitted_on_seen_ones(small_config, small_data, variant):
    model, store = ranker(small_config, small_data, variant), small_data.store
    content = item_embedding_tables(model, store, 64)["content"]  # (n_rows, D)
    rng = np.random.default_rng(1)
    mapping, offset = rng.normal(size=(content.shape[1], model.item_embed.embedding_dim)), rng.normal(size=1)
    seen = np.arange(store.n_rows) % 3 != 0  # every third row was never shown
    with torch.no_grad():  # seen items' IDs: an exact linear function of their content
        model.item_embed.weight[torch.from_numpy(np.flatnonzero(seen))] = torch.from_numpy(
            (content[seen] @ mapping + offset).astype(np.float32)
        )
    before = model.item_embed.weight.detach().clone()

    filled = fill_unseen_item_ids(model, store, seen, ridge=1e-6)

    unseen = np.flatnonzero(~seen)[1:]  # row 0 (padding) is never filled
    assert filled == len(unseen)
    after = model.item_embed.weight.detach()
    expected = torch.from_numpy((content[unseen] @ mapping + offset).astype(np.float32))
    # float32 embeddings of O(1) values through a float64 solve: errors near 1e-5 of the values' scale
    torch.testing.assert_close(after[unseen], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after[seen], before[seen], rtol=0, atol=0)
    assert torch.count_nonzero(after[0]) == 0


def test_a_model_without_content_is_left_alone(small_config, small_data):
    model = ranker(small_config, small_data, "id_only")
    before = model.item_embed.weight.detach().clone()
    assert fill_unseen_item_ids(model, small_data.store, np.zeros(small_data.store.n_rows, dtype=bool)) == 0
    torch.testing.assert_close(model.item_embed.weight.detach(), before, rtol=0, atol=0)


def test_training_fills_unseen_ids_only_when_asked(small_config, small_data, tmp_path):
    from em3.train import train

    seen = np.bincount(small_data.train.item.numpy(), minlength=small_data.store.n_rows) > 0
    unseen = np.flatnonzero(~seen)[1:]
    assert len(unseen), "the small log has items that only validation or test show"
    models = {}
    for fill in (False, True):
        cfg = with_updates(
            small_config,
            output_dir=tmp_path / str(fill),
            train={"max_steps": 10},
            model={"variant": "em3", "unseen_ids_from_content": fill},
        )
        models[fill] = train(cfg, small_data, test=False).model
    kept, filled = (models[fill].item_embed.weight.detach()[unseen] for fill in (False, True))
    content = item_embedding_tables(models[True], small_data.store, 64)
    fitted_on = seen & (np.arange(len(seen)) > 0)  # the padding row is not an item
    weights = ridge_fit(content["content"][fitted_on], content["id"][fitted_on])
    predicted = torch.from_numpy((content["content"][unseen] @ weights[:-1] + weights[-1]).astype(np.float32))
    torch.testing.assert_close(filled, predicted, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(kept, filled), "without the fill, unseen items keep their initial embeddings"
