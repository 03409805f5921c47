"""The similarity metrics encode only the items they read (issue 20: evaluation's cost set by what it needs, not by
the catalogue), and score exactly what encoding the whole catalogue scores."""

import numpy as np
import pytest

from em3.evaluation.similarity import behaviour_similarity
from em3.evaluation.stage import shared_inputs, similarities
from em3.models.item_tables import item_embedding_tables
from em3.train import train
from tests.conftest import with_updates


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_similarities_encode_the_items_they_read_and_score_as_the_whole_catalogue(
    small_config, small_data, tmp_path, variant
):
    cfg = with_updates(small_config, output_dir=tmp_path, model={"variant": variant}, train={"max_steps": 5})
    model = train(cfg, small_data, test=False).model
    shared = shared_inputs(small_data, cfg.evaluate)
    encoded = []
    content_forward = model.content.forward
    model.content.forward = lambda content: encoded.append(len(content.pooled)) or content_forward(content)
    metrics, _, behaviour = similarities(model, small_data.store, shared, cfg.evaluate)
    model.content.forward = content_forward
    readable = int((np.asarray(shared.interactions.sum(axis=1)).ravel() > 0).sum())
    assert len(shared.popular_items) <= sum(encoded) <= readable + len(shared.popular_items)
    assert sum(encoded) < small_data.store.n_rows, "not the whole catalogue"
    whole = item_embedding_tables(model, small_data.store, cfg.evaluate.batch_size)
    mean, per_item = behaviour_similarity(
        whole["content"], shared.interactions, shared.popular_items, cfg.evaluate.k_neighbours
    )
    assert metrics["behaviour_similarity"] == pytest.approx(mean, abs=1e-6)  # same vectors, same neighbours
    np.testing.assert_allclose(behaviour, per_item, atol=1e-6)
