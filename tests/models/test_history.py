import pytest
import torch

from em3.data.dataset import make_batch
from em3.models import Ranker
from em3.models.history import HistoryContent
from em3.train.trainer import model_shapes
from tests.conftest import with_updates


def build(small_config, small_data, **model):
    torch.manual_seed(0)
    cfg = with_updates(small_config, model={"variant": "em3", **model})
    return Ranker(cfg.model, model_shapes(small_data))


def history_grads(model: Ranker, small_data) -> dict[str, torch.Tensor | None]:
    batch = make_batch(small_data.train, torch.arange(64), small_data.store, True)
    model.zero_grad()
    model.history_content(batch.history_content).pow(2).sum().backward()
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
    batch = make_batch(small_data.train, torch.arange(32), small_data.store, True)
    torch.testing.assert_close(model.history_content(batch.history_content), model.content(batch.history_content))


def test_full_history_trains_the_whole_tower(small_config, small_data):
    grads = history_grads(build(small_config, small_data, history_mode="full"), small_data)
    assert grads["content.fusion.queries"].abs().sum() > 0
    assert grads["content.head.0.weight"].abs().sum() > 0


def test_frozen_history_keeps_no_graph(small_config, small_data):
    model = build(small_config, small_data, history_mode="frozen")
    batch = make_batch(small_data.train, torch.arange(8), small_data.store, True)
    assert not model.history_content(batch.history_content).requires_grad


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
    batch = make_batch(small_data.train, torch.arange(16), small_data.store, True)
    logits, losses = model(batch)
    assert logits.shape == (16,) and set(losses) == {"bce", "cic", "loss"}
    losses["loss"].backward()


@pytest.mark.parametrize("mode", ["lora", "frozen"])
def test_history_items_encoded_in_chunks_give_the_same_embeddings(small_config, small_data, mode, monkeypatch):
    import em3.models.history as history

    model = build(small_config, small_data, history_mode=mode).eval()
    batch = make_batch(small_data.train, torch.arange(64), small_data.store, True)
    whole = model.history_content(batch.history_content)
    monkeypatch.setattr(history, "NO_GRAD_CHUNK", 7)
    torch.testing.assert_close(model.history_content(batch.history_content), whole)
    assert len(batch.history_items) > 7  # more than one chunk was used
