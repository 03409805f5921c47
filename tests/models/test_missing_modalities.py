"""Items without an image, a text or both: em3 and two_stage train on them, stay finite, and never read the values
stored where a modality is masked. Also catalogues where one modality is absent altogether (zero-width arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from em3.data.dataset import ContentInputs, RankingData, Split, make_batch
from em3.data.history import earlier_histories
from em3.data.token_store import TokenStore
from em3.models import Ranker
from em3.models.content import PooledContent
from em3.train.trainer import model_shapes, predict, train
from tests.conftest import with_updates

N_ITEMS, T_IMG, T_TXT, D_IMG, D_TXT = 40, 4, 6, 12, 8
KINDS = ("both", "image_only", "text_only", "neither")  # item i has KINDS[i % 4]


def tiny_store(image: bool = True, text: bool = True, seed: int = 0) -> TokenStore:
    """Random tokens; item i has an image when its kind has one (and the catalogue does), likewise text; texts
    have 2..T_TXT real tokens. Masked positions hold zeros, as the features stage writes them."""
    rng = np.random.default_rng(seed)
    n = N_ITEMS + 1
    kind = np.array(["none"] + [KINDS[i % 4] for i in range(N_ITEMS)])
    has_image = np.isin(kind, ["both", "image_only"]) & image
    has_text = np.isin(kind, ["both", "text_only"]) & text
    image_mask = np.repeat(has_image[:, None], T_IMG, 1) if image else np.zeros((n, 0), bool)
    lengths = rng.integers(2, T_TXT + 1, size=n)
    text_mask = (np.arange(T_TXT)[None] < lengths[:, None]) & has_text[:, None] if text else np.zeros((n, 0), bool)
    d_img, d_txt = (D_IMG if image else 0), (D_TXT if text else 0)
    image_tokens = rng.normal(size=(n, image_mask.shape[1], d_img)) * image_mask[..., None]
    text_tokens = rng.normal(size=(n, text_mask.shape[1], d_txt)) * text_mask[..., None]

    def pooled(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return tokens.sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)

    return TokenStore(
        item_ids=[f"item-{i}" for i in range(1, n)],
        image_tokens=image_tokens.astype(np.float16),
        image_mask=image_mask,
        text_tokens=text_tokens.astype(np.float16),
        text_mask=text_mask,
        pooled_image=pooled(image_tokens, image_mask).astype(np.float16),
        pooled_text=pooled(text_tokens, text_mask).astype(np.float16),
    )


def tiny_data(store: TokenStore, seed: int = 0) -> RankingData:
    """600 impressions of 30 users over 12 days (train < 8 ≤ valid < 10 ≤ test); clicks favour even items."""
    rng = np.random.default_rng(seed)
    n = 600
    user, day = rng.integers(1, 31, n), rng.integers(0, 12, n)
    item = rng.integers(1, store.n_rows, n)
    label = (rng.random(n) < np.where(item % 2 == 0, 0.6, 0.2)).astype(np.int64)
    history = earlier_histories(user, day, item, label, 5)
    split = np.where(day >= 10, 2, np.where(day >= 8, 1, 0))

    def take(part: int) -> Split:
        rows = split == part
        return Split(
            user=torch.from_numpy(user[rows]),
            item=torch.from_numpy(item[rows]),
            context=torch.ones(int(rows.sum()), 1, dtype=torch.int64),
            history=torch.from_numpy(history[rows]),
            label=torch.from_numpy(label[rows].astype(np.float32)),
            cold=torch.zeros(int(rows.sum()), dtype=torch.bool),
        )

    train_counts = np.bincount(item[split == 0], minlength=store.n_rows)
    return RankingData(take(0), take(1), take(2), 31, (2,), store, train_counts)


def with_garbage(store: TokenStore, value: float, pooled_too: bool) -> TokenStore:
    """The same store with ``value`` wherever a modality is masked: token padding, missing modalities' tokens and
    the padding row 0; with ``pooled_too`` also missing modalities' pooled vectors (which the store contract keeps
    at exact zeros: that is how a pooled-only gather tells a missing modality)."""
    garbage = {}
    for name in ("image", "text"):
        tokens, mask = getattr(store, f"{name}_tokens").copy(), getattr(store, f"{name}_mask")
        pooled = getattr(store, f"pooled_{name}").copy()
        tokens[~mask] = value
        if pooled_too:
            pooled[~mask.any(1)] = value
        garbage |= {f"{name}_tokens": tokens, f"{name}_mask": mask, f"pooled_{name}": pooled}
    return TokenStore(item_ids=store.item_ids, **garbage)


def config(small_config, variant: str, tmp_path, **model):
    return with_updates(
        small_config,
        model={"variant": variant, **model},
        train={"max_steps": 6, "batch_size": 64, "epochs": 1},
        output_dir=tmp_path / variant,
    )


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
@pytest.mark.parametrize(("image", "text"), [(True, True), (False, True), (True, False)])
def test_both_variants_train_on_items_with_missing_modalities(small_config, tmp_path, variant, image, text):
    data = tiny_data(tiny_store(image, text))
    cfg = config(small_config, variant, tmp_path)
    result = train(cfg, data)
    assert result.metrics["steps"] == 6
    assert result.metrics["inputs"]["modalities"] == {"image": image, "text": text}
    for split in ("valid", "test"):
        assert np.isfinite(result.metrics[split]["logloss"]) and 0 <= result.metrics[split]["auc"] <= 1
    logits = predict(result.model, data.test, data, batch_size=64)
    assert logits.shape == (len(data.test),) and np.isfinite(logits).all()
    embeddings = result.model.item_embeddings(torch.arange(data.n_items), data.store.gather(torch.arange(data.n_items)))
    assert torch.isfinite(embeddings["content"]).all(), "an item without content must still get a finite embedding"


@pytest.mark.parametrize("garbage", [1e4, float("nan")])
@pytest.mark.parametrize(
    ("variant", "model"),
    [("em3", {}), ("em3", {"fusion": "mean", "content_cache_every": 0}), ("two_stage", {})],
)
def test_outputs_ignore_whatever_is_stored_where_a_modality_is_masked(small_config, tmp_path, variant, model, garbage):
    store = tiny_store()
    data = tiny_data(store)
    torch.manual_seed(0)
    ranker = Ranker(config(small_config, variant, tmp_path, **model).model, model_shapes(data))
    with torch.no_grad():  # a trained-looking "missing" vector, not the zero it starts at
        for parameter in ranker.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    clean = predict(ranker, data.test, data, batch_size=64)
    dirty_data = tiny_data(with_garbage(store, garbage, pooled_too=variant == "em3"))
    np.testing.assert_array_equal(predict(ranker, dirty_data.test, dirty_data, batch_size=64), clean)


def test_presence_is_read_off_the_pooled_vectors_and_agrees_with_the_masks():
    store = tiny_store()
    rows = torch.tensor([[0, 1, 2], [3, 4, 4]])  # any shape, repeats
    for tokens in (True, False):
        content = store.gather(rows, tokens=tokens)
        assert content.present.shape == (2, 3, 2)
        expected = np.stack([store.image_mask.any(1), store.text_mask.any(1)], axis=-1)[rows.numpy()]
        np.testing.assert_array_equal(content.present.numpy(), expected)
    negative_zero = TokenStore(**{**store.__dict__, "pooled_image": -np.abs(store.pooled_image) * 0})
    assert not negative_zero.gather(torch.arange(5), tokens=False).present[:, 0].any(), "-0.0 is zero"


def test_two_stage_gives_a_missing_modality_its_learned_vector_and_trains_it(small_config, small_data, tmp_path):
    data = tiny_data(tiny_store())
    torch.manual_seed(0)
    ranker = Ranker(config(small_config, "two_stage", tmp_path).model, model_shapes(data))
    content = ranker.content
    assert isinstance(content, PooledContent) and set(content.missing) == {"image", "text"}
    items = torch.arange(1, data.n_items)
    gathered = data.store.gather(items, tokens=False)
    with torch.no_grad():
        content.missing["image"].fill_(2.0)
        content.missing["text"].fill_(-1.0)
    no_image = ~gathered.present[:, 0]
    filled = torch.where(no_image[:, None], torch.full((len(items), D_IMG), 2.0), gathered.pooled[:, :D_IMG])
    text = torch.where(gathered.present[:, 1:], gathered.pooled[:, D_IMG:], -1.0)
    expected = content.proj(torch.cat([filled, text], 1))
    torch.testing.assert_close(content(gathered), expected)

    batch = make_batch(data.train, torch.arange(len(data.train)), data.store, ranker.content_inputs)
    ranker.zero_grad()
    ranker(batch)[1]["loss"].backward()
    for name in ("image", "text"):
        assert content.missing[name].grad.abs().sum() > 0, f"the missing-{name} vector gets no gradient"


def test_a_store_without_any_content_is_refused_for_content_models(small_config, tmp_path):
    data = tiny_data(tiny_store(image=False, text=False))
    with pytest.raises(ValueError, match="neither images nor texts"):
        Ranker(config(small_config, "em3", tmp_path).model, model_shapes(data))
    ranker = Ranker(config(small_config, "id_only", tmp_path).model, model_shapes(data))
    assert ranker.content_inputs == ContentInputs()


@pytest.mark.parametrize(
    ("tokens", "text_share"), [(True, 0.5), (False, 0.5), (True, 0.8)], ids=["tokens", "pooled_only", "text_share_0.8"]
)
def test_modality_dropout_hides_one_modality_of_items_that_have_both(tokens, text_share):
    """Only items with both modalities lose one, never both; what is hidden is masked and zero, the rest untouched;
    about the rate's share of them lose one, ``text_share`` of those their text."""
    from em3.models.content import drop_modalities

    store = tiny_store()
    rows = torch.arange(1, store.n_rows).repeat(200)  # 8,000 draws, 2,000 of items with both modalities
    content = store.gather(rows, tokens=tokens)
    dropped = drop_modalities(content, 0.5, (D_IMG, D_TXT), torch.Generator().manual_seed(0), text_share)
    lost = content.present & ~dropped.present  # (N, 2)
    both = content.present.all(-1)
    assert not (dropped.present & ~content.present).any(), "nothing appears"
    assert not lost[~both].any() and not lost.all(-1).any(), "only items with both lose one, and only one"
    # ~1,000 dropped of 2,000 draws: a binomial share's standard deviation is at most 0.016, so ±0.05 is > 3 sigma
    assert (
        0.45 < lost.any(-1)[both].float().mean() < 0.55
        and abs(lost[both][lost[both].any(-1), 1].float().mean() - text_share) < 0.05
    )
    image, text = dropped.pooled.split((D_IMG, D_TXT), dim=-1)
    assert (image[lost[:, 0]] == 0).all() and (text[lost[:, 1]] == 0).all()
    kept = ~lost.any(-1)
    assert torch.equal(dropped.pooled[kept], content.pooled[kept])
    if tokens:
        assert not dropped.image_mask[lost[:, 0]].any() and not dropped.text_mask[lost[:, 1]].any()
        assert torch.equal(dropped.text_mask[kept], content.text_mask[kept])
        assert torch.equal(dropped.text_tokens, content.text_tokens), "tokens stay; their masks hide them"


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_modality_dropout_acts_in_training_only(small_config, tmp_path, variant):
    """The same weights score alike with or without modality dropout in eval mode; in training, the loss differs
    (items lost a modality) and the model still trains on such steps."""
    data = tiny_data(tiny_store())
    models = []
    for rate in (0.0, 0.9):
        torch.manual_seed(0)
        models.append(Ranker(config(small_config, variant, tmp_path, modality_dropout=rate).model, model_shapes(data)))
    plain, dropping = models
    dropping.load_state_dict(plain.state_dict())
    np.testing.assert_array_equal(predict(dropping, data.test, data, 64), predict(plain, data.test, data, 64))
    batch = make_batch(data.train, torch.arange(64), data.store, plain.content_inputs)
    for model in models:
        model.train()
        model.refresh_content_cache(data.store)
    for module in (*plain.modules(), *dropping.modules()):  # only modality dropout may differ between the two
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(1)
    _, with_dropout = dropping(batch)
    _, without = plain(batch)
    assert not torch.isclose(with_dropout["bce"], without["bce"])
    with_dropout["loss"].backward()
    assert all(p.grad is not None for p in dropping.content.parameters() if p.requires_grad)
