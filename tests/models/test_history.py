import dataclasses

import numpy as np
import pytest
import torch

from em3.config import EM3_OBJECTIVE_WEIGHTS
from em3.data.dataset import ContentInputs, make_batch
from em3.models import Ranker
from em3.models.history import HistoryContent
from em3.train.trainer import model_shapes
from tests.conftest import with_updates

TOKENS = ContentInputs("tokens", "tokens", similarity=True)
CACHES = ["catalogue", "read"]


def build(small_config, small_data, **model):
    """An em3 model; without a history cache unless asked (these tests feed history content directly)."""
    torch.manual_seed(0)
    cfg = with_updates(small_config, model={"variant": "em3", "content_cache_every": 0, **model})
    return Ranker(cfg.model, model_shapes(small_data))


def read(model: Ranker, rows: torch.Tensor) -> torch.Tensor:
    """What the cache gives for item rows ``rows`` (fusing them first where a read-through cache must)."""
    with torch.no_grad():
        return model.content.fused(rows, None).clone()


def fuse_now(model: Ranker, store, rows: torch.Tensor) -> torch.Tensor:
    """The fused vectors of ``rows`` with the current weights, without any cache."""
    model.eval()
    with torch.no_grad():
        return model.content.fuse(store.gather(rows)).float()


def counted_fuse(model: Ranker) -> list[int]:
    """Count the items the model's fusion is called on (one entry per item)."""
    calls: list[int] = []
    fuse = model.content.fuse
    model.content.fuse = lambda content: calls.extend([1] * content.pooled.shape[0]) or fuse(content)
    return calls


def encode_history(model: Ranker, batch) -> torch.Tensor:
    return model.history_content(batch.history_items, batch.history_content)


def history_grads(model: Ranker, small_data) -> dict[str, torch.Tensor | None]:
    batch = make_batch(small_data.train, torch.arange(64), small_data.store, TOKENS)
    model.zero_grad()
    encode_history(model, batch).pow(2).sum().backward()
    return {name: p.grad for name, p in model.named_parameters()}


def test_lora_history_trains_only_lora_parameters(small_config, small_data):
    model = build(small_config, small_data, history_mode="lora")
    grads = history_grads(model, small_data)
    with_grad = {name for name, g in grads.items() if g is not None and g.abs().sum() > 0}
    assert with_grad and all("lora_B" in name or "lora_A" in name for name in with_grad), with_grad
    assert any("lora_B" in name for name in with_grad)  # B gets gradient first (A's is zero while B is zero)
    # the shared base weights still train from the target side
    head = model.content.head[0].weight
    assert head.requires_grad and grads["content.head.0.weight"] is None


def test_lora_history_starts_equal_to_the_target_tower(small_config, small_data):
    model = build(small_config, small_data, history_mode="lora").eval()
    batch = make_batch(small_data.train, torch.arange(32), small_data.store, TOKENS)
    torch.testing.assert_close(encode_history(model, batch), model.content(batch.history_content))


def test_the_merged_lora_head_is_pefts_forward_with_its_gradients(small_config, small_data):
    """The history head adds each adapter's delta to the base weight (one product a layer); peft's own forward adds
    B(A(x)) to the base output. Same function and gradients, to float32 rounding (sums of about 100 terms of
    magnitude 1: errors near 1e-6, so 1e-5 absolute)."""
    history = build(small_config, small_data, history_mode="lora").history_content
    torch.manual_seed(1)
    for name, weight in history.lora_head.named_parameters():
        if "lora_" in name:
            weight.data.normal_(0.0, 0.3)  # B starts at zero: give both adapters a real delta
    fused = torch.randn(50, history.tower[0].fusion.out_dim)
    adapters = [p for name, p in history.lora_head.named_parameters() if "lora_" in name]
    base = {name: p.detach() for name, p in history.lora_head.named_parameters() if "lora_" not in name}
    outputs, grads = [], []
    for forward in (
        lambda: history._merged_lora_head(fused),
        lambda: torch.func.functional_call(history.lora_head, base, (fused,), strict=False),
    ):
        out = forward()
        outputs.append(out)
        grads.append(torch.autograd.grad(out.pow(2).sum(), adapters))
    assert outputs[0].abs().max() > 0.1 and not torch.allclose(outputs[0], history.tower[0].head(fused))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    for merged, own in zip(*grads, strict=True):
        torch.testing.assert_close(merged, own, rtol=1e-4, atol=1e-4)


def test_full_history_trains_the_whole_tower(small_config, small_data):
    grads = history_grads(build(small_config, small_data, history_mode="full"), small_data)
    assert grads["content.fusion.queries"].abs().sum() > 0
    assert grads["content.head.0.weight"].abs().sum() > 0


def test_frozen_history_keeps_no_graph(small_config, small_data):
    model = build(small_config, small_data, history_mode="frozen")
    batch = make_batch(small_data.train, torch.arange(8), small_data.store, TOKENS)
    assert not encode_history(model, batch).requires_grad


def test_trainable_parameter_counts_are_reported_and_lora_is_smaller(small_config, small_data):
    counts = {
        mode: build(small_config, small_data, history_mode=mode).parameter_counts()["history_content_trainable"]
        for mode in ("full", "lora", "frozen")
    }
    assert counts["frozen"] == 0 < counts["lora"] < counts["full"]
    lora = build(small_config, small_data, history_mode="lora").history_content
    rank, embed = small_config.model.lora.rank, small_config.model.embed_dim
    fused = lora.tower[0].fusion.out_dim
    assert counts["lora"] == rank * (fused + embed) + rank * (embed + embed)


@pytest.mark.parametrize("mode", ["full", "lora", "frozen"])
def test_history_modes_run_in_the_full_model(small_config, small_data, mode):
    model = build(small_config, small_data, history_mode=mode)
    assert isinstance(model.history_content, HistoryContent)
    batch = make_batch(small_data.train, torch.arange(16), small_data.store, TOKENS)
    logits, losses = model(batch)
    objectives = {name.removesuffix("_weight") for name, weight in EM3_OBJECTIVE_WEIGHTS.items() if weight > 0}
    assert logits.shape == (16,) and set(losses) == {"bce", "cic", "loss", *objectives}  # em3's defaults
    losses["loss"].backward()


@pytest.mark.parametrize("mode", ["lora", "frozen"])
def test_history_items_encoded_in_chunks_give_the_same_embeddings(small_config, small_data, mode, monkeypatch):
    import em3.models.history as history

    model = build(small_config, small_data, history_mode=mode).eval()
    batch = make_batch(small_data.train, torch.arange(64), small_data.store, TOKENS)
    whole = encode_history(model, batch)
    monkeypatch.setattr(history, "NO_GRAD_CHUNK", 7)
    torch.testing.assert_close(encode_history(model, batch), whole)
    assert len(batch.history_items) > 7  # more than one chunk was used


@pytest.mark.parametrize("mode", ["lora", "frozen"])
def test_a_fresh_cache_gives_the_logits_of_fusing_every_batch(small_config, small_data, mode):
    exact = build(small_config, small_data, history_mode=mode).eval()
    cached = build(small_config, small_data, history_mode=mode, content_cache_every=10).eval()
    cached.load_state_dict(exact.state_dict())
    assert cached.content_inputs == ContentInputs("tokens", None, True)  # training batches carry no history tokens
    assert cached.prediction_inputs == ContentInputs(similarity=True)  # prediction batches carry no content
    cached.refresh_content_cache(small_data.store)
    index = torch.arange(64)
    with torch.no_grad():
        expected = exact(make_batch(small_data.train, index, small_data.store, exact.content_inputs))[0]
        for inputs in (cached.content_inputs, cached.prediction_inputs):
            logits = cached(make_batch(small_data.train, index, small_data.store, inputs))[0]
            torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("kind", CACHES)
def test_the_cache_is_stale_until_refreshed_and_says_so(small_config, small_data, kind):
    model = build(small_config, small_data, content_cache_every=10, content_cache=kind)
    batch = make_batch(small_data.train, torch.arange(8), small_data.store, model.content_inputs)
    with pytest.raises(RuntimeError, match="refresh_content_cache"):
        model(batch)
    model.refresh_content_cache(small_data.store)
    rows = torch.arange(1, 9)
    before = read(model, rows)
    with torch.no_grad():
        model.content.fusion.queries.add_(1.0)  # the weights move: the cache keeps the old fusion until refreshed
    torch.testing.assert_close(read(model, rows), before)
    model.refresh_content_cache(small_data.store)
    assert not torch.allclose(read(model, rows), before)
    torch.testing.assert_close(read(model, rows), fuse_now(model, small_data.store, rows), rtol=1e-5, atol=1e-6)


def test_full_history_trains_without_the_cache_and_two_stage_reads_pooled_vectors_only(small_config, small_data):
    full = build(small_config, small_data, history_mode="full", content_cache_every=10)
    assert full.content_cache_every == 0 and full.content_inputs == TOKENS
    assert full.prediction_inputs == ContentInputs(similarity=True)
    two_stage = Ranker(with_updates(small_config, model={"variant": "two_stage"}).model, model_shapes(small_data))
    assert two_stage.content_inputs == two_stage.prediction_inputs == ContentInputs("pooled", "pooled", True)
    batch = make_batch(small_data.train, torch.arange(8), small_data.store, two_stage.content_inputs)
    assert batch.target_content.image_tokens is None and batch.target_content.pooled.shape[0] == len(batch.target_items)


@pytest.mark.parametrize("kind", CACHES)
def test_the_cache_is_refreshed_only_when_the_weights_or_the_store_changed(small_config, small_data, kind):
    model = build(small_config, small_data, content_cache_every=10, content_cache=kind)
    calls = counted_fuse(model)
    rows = torch.arange(1, 9)
    model.refresh_content_cache(small_data.store)
    read(model, rows)
    fused_once = len(calls)
    model.refresh_content_cache(small_data.store)  # e.g. predicting test right after valid
    read(model, rows)
    assert fused_once > 0 and len(calls) == fused_once
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = make_batch(small_data.train, torch.arange(16), small_data.store, model.content_inputs)
    model(batch)[1]["loss"].backward()
    optimizer.step()  # in-place update: the cache is stale
    before = len(calls)
    model.refresh_content_cache(small_data.store)
    read(model, rows)
    assert len(calls) == before + fused_once


@pytest.mark.parametrize("kind", CACHES)
def test_a_new_store_is_never_taken_for_a_freed_one(small_config, small_data, monkeypatch, kind):
    """CPython may give a new store the address (``id``) of one just freed: the cache must not key on it. Every
    object gets the same ``id`` here, the worst case of address reuse."""
    import em3.models.content_cache

    monkeypatch.setattr(em3.models.content_cache, "id", lambda _: 1, raising=False)
    model = build(small_config, small_data, content_cache_every=10, content_cache=kind)
    store = small_data.store
    rows = torch.arange(1, 9)
    first = dataclasses.replace(store)
    model.refresh_content_cache(first)
    read(model, rows)
    del first  # a store object that is freed now
    other = dataclasses.replace(store, text_tokens=store.text_tokens + np.float16(1))  # other content
    model.refresh_content_cache(other)
    torch.testing.assert_close(read(model, rows), fuse_now(model, other, rows), rtol=1e-5, atol=1e-6)
