"""The similarity metrics encode only the items they read (issue 20: evaluation's cost set by what it needs, not by
the catalogue), and score exactly what encoding the whole catalogue scores."""

import numpy as np
import pytest

from em3.evaluation.similarity import behaviour_similarity
from em3.evaluation.stage import HELD_OUT, IN_SAMPLE, shared_inputs, similarities
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
    read = set()
    for ref in shared.behaviour.values():
        read |= set(ref.popular_items) | set(np.flatnonzero(np.asarray(ref.interactions.sum(axis=1)).ravel() > 0))
    assert sum(encoded) == len(read) < small_data.store.n_rows, "what the metrics read, not the whole catalogue"
    whole = item_embedding_tables(model, small_data.store, cfg.evaluate.batch_size)
    for name in (HELD_OUT, IN_SAMPLE):
        ref = shared.behaviour[name]
        mean, per_item = behaviour_similarity(
            whole["content"], ref.interactions, ref.popular_items, cfg.evaluate.k_neighbours
        )
        assert metrics[name] == pytest.approx(mean, abs=1e-6)  # same vectors, same neighbours
        if name == HELD_OUT:
            np.testing.assert_allclose(behaviour, per_item, atol=1e-6)
