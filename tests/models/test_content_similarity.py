"""The frozen-content cosines between a target and its history: values by hand, and content models reading them."""

import math

import numpy as np
import pytest
import torch

from em3.data.content_similarity import history_similarity
from em3.data.dataset import make_batch
from em3.data.mapped import MappedRows
from em3.data.token_store import TokenStore
from em3.evaluation.similarity import nonzero_rows
from em3.models import Ranker
from em3.train.trainer import model_shapes
from tests.conftest import with_updates


def tiny_store() -> TokenStore:
    """Rows 1..4: image-only [1, 0], image+text, text-only, no content (row 0 is padding)."""
    image = np.array([[0, 0], [3, 0], [1, 1], [0, 0], [0, 0]], np.float16)
    text = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 2], [0, 5, 0], [0, 0, 0]], np.float16)
    return TokenStore(
        item_ids=["a", "b", "c", "d"],
        image_tokens=image[:, None, :],
        image_mask=np.any(image, 1)[:, None],
        text_tokens=text[:, None, :],
        text_mask=np.any(text, 1)[:, None],
        pooled_image=image,
        pooled_text=text,
    )


def test_cosines_by_hand():
    store = tiny_store()
    # unit content (each modality normalised, then the whole): 1 = [1,0 | 0,0,0]; 2 = [1,1,0 0 1]/2 → [.5,.5|0,0,.5√2]
    # 3 = [0,0 | 0,1,0]; 4 = zeros
    item = torch.tensor([1, 1, 2, 3])
    history = torch.tensor([[2, 3, 0], [4, 0, 0], [1, 0, 0], [0, 0, 0]])
    got = history_similarity(store, item, history)
    c12 = (1 / math.sqrt(2)) / math.sqrt(2)  # cos(item 1, item 2) = 0.5
    expected = [[c12 / 2, c12], [0.0, 0.0], [c12, c12], [0.0, 0.0]]
    torch.testing.assert_close(got, torch.tensor(expected), atol=2e-3, rtol=0)  # fp16 table: ~1e-3 relative


def test_the_unit_table_is_read_from_a_file_row_by_row(monkeypatch):
    """unit_content holds no array in memory: rows are read when indexed, with the values of the definition, and a
    table built in several chunks equals one built at once."""
    import em3.data.content_similarity as content_similarity

    store = tiny_store()
    table = content_similarity.unit_content(store)
    assert isinstance(table, MappedRows) and table.shape == (5, 5) and not hasattr(table, "numpy")
    rows = table[torch.tensor([3, 1, 3])]
    assert rows.dtype == torch.float16
    torch.testing.assert_close(rows[0], torch.tensor([0, 0, 0, 1, 0], dtype=torch.float16))
    torch.testing.assert_close(rows[1], torch.tensor([1, 0, 0, 0, 0], dtype=torch.float16))
    monkeypatch.setattr(content_similarity, "_CHUNK", 2)
    chunked = content_similarity.unit_content(tiny_store())  # another store: built anew, two rows at a time
    torch.testing.assert_close(chunked[torch.arange(5)], table[torch.arange(5)])
    assert nonzero_rows(table).tolist() == [False, True, True, True, False]


@pytest.mark.parametrize("variant", ["two_stage", "em3"])
def test_content_models_read_the_similarity_and_id_only_does_not(small_config, small_data, variant):
    cfg = with_updates(small_config, model={"variant": variant, "history_similarity": True})
    model = Ranker(cfg.model, model_shapes(small_data)).eval()
    assert model.content_inputs.similarity and model.prediction_inputs.similarity
    model.refresh_content_cache(small_data.store)
    index = torch.arange(64)
    batch = make_batch(small_data.train, index, small_data.store, model.prediction_inputs)
    assert batch.similarity.shape == (64, 2)
    with torch.no_grad():
        before = model(batch)[0]
        batch.similarity = batch.similarity + 1.0
        assert not torch.allclose(model(batch)[0], before), "the logits depend on the similarity inputs"
        batch.similarity = None
        with pytest.raises(ValueError, match="content similarity"):
            model(batch)
    id_only = Ranker(with_updates(cfg, model={"variant": "id_only"}).model, model_shapes(small_data))
    assert not id_only.content_inputs.similarity


def test_training_standardises_the_similarity_and_saves_the_scaling(small_config, small_data, tmp_path):
    from em3.data.content_similarity import history_similarity, similarity_scaling
    from em3.models.io import load_model_dir
    from em3.train import train

    cfg = with_updates(
        small_config,
        output_dir=tmp_path,
        model={"variant": "two_stage", "history_similarity": True},
        train={"max_steps": 3},
    )
    model = train(cfg, small_data).model
    train_rows = small_data.train
    mean, std = similarity_scaling(history_similarity(small_data.store, train_rows.item, train_rows.history))
    torch.testing.assert_close(model.similarity_mean, mean)
    assert bool((std > 0).all()) and not torch.allclose(std, torch.ones(2))
    loaded, _ = load_model_dir(tmp_path / "model")
    torch.testing.assert_close(loaded.similarity_std, model.similarity_std, rtol=0, atol=0)


@pytest.mark.parametrize("by_user", [False, True])
def test_chunked_products_equal_the_per_row_definition(by_user):
    """The chunked product of targets and distinct history items, rows in user order or not, gives each row what the
    per-row gather gives. Both multiply the same float16 table in float32 (8-d unit vectors): they differ only in
    summation order, a few float32 roundings of terms below 1 (bound 8 · 2⁻²⁴ ≈ 5e-7)."""
    rng = np.random.default_rng(3)
    n_items, n_rows, length = 40, 700, 6  # 700 rows: three chunks, the last partial
    pooled_image = rng.normal(size=(n_items + 1, 5)).astype(np.float16)
    pooled_text = rng.normal(size=(n_items + 1, 3)).astype(np.float16)
    pooled_text[5:9] = 0  # items without text
    store = TokenStore(
        item_ids=[f"i{i}" for i in range(n_items)],
        image_tokens=pooled_image[:, None, :],
        image_mask=np.r_[[[False]], np.ones((n_items, 1), bool)],
        text_tokens=pooled_text[:, None, :],
        text_mask=np.any(pooled_text, 1)[:, None] & (np.arange(n_items + 1) > 0)[:, None],
        pooled_image=pooled_image,
        pooled_text=pooled_text,
    )
    item = torch.from_numpy(rng.integers(1, n_items + 1, n_rows))
    history = torch.from_numpy(rng.integers(0, n_items + 1, (n_rows, length)))
    history[::7] = 0  # rows without history
    user = torch.from_numpy(rng.integers(0, 30, n_rows)) if by_user else None

    from em3.data.content_similarity import cosine_summary, unit_content

    table = unit_content(store)[torch.arange(store.n_rows)].float()
    expected = cosine_summary(torch.einsum("bd,bld->bl", table[item], table[history]), history)
    got = history_similarity(store, item, history, user)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert (got[::7] == 0).all() and got[1::7].abs().sum() > 0
