"""The read-through cache (em3.models.content_cache.ReadThroughCache): bounded, correct under eviction, fresh after
a refresh, and a training step fuses only the items it reads (issue 20)."""

from __future__ import annotations

import torch

from em3.data.dataset import make_batch
from em3.data.synthetic_tokens import generate_synthetic
from em3.models import Ranker
from em3.models.content_cache import ReadThroughCache
from em3.train.trainer import model_shapes
from tests.conftest import with_updates


class Store:
    """Stands in for a token store: the cache only holds it (weakly) and hands it to the encoder."""


def encoder(scale: torch.Tensor):
    """A deterministic encoder that counts what it fuses: item r -> (r, -r, 2r) x scale."""
    fused: list[int] = []

    def encode(rows: torch.Tensor, store: Store) -> torch.Tensor:
        fused.extend(rows.tolist())
        return torch.stack([rows, -rows, 2 * rows], dim=-1).float() * scale

    return encode, fused


def expected(rows, scale: torch.Tensor) -> torch.Tensor:
    rows = torch.as_tensor(rows)
    return torch.stack([rows, -rows, 2 * rows], dim=-1).float() * scale


def test_reads_are_right_whatever_the_cache_keeps_and_it_never_keeps_more_than_its_capacity():
    scale, store = torch.ones(()), Store()
    cache = ReadThroughCache(n_items=50, width=3, capacity=4)
    encode, fused = encoder(scale)
    cache.refresh(store, [scale], encode)
    for rows, new in [([1, 2, 3, 2], [1, 2, 3]), ([3, 1], []), ([4, 5], [4, 5]), ([1, 3, 4, 5], [])]:
        fused.clear()
        torch.testing.assert_close(cache.read(torch.tensor(rows), encode), expected(rows, scale))
        assert sorted(fused) == new, rows
    # 4 slots: reading 4 and 5 evicted 2, the item read longest ago; 1, 3, 4, 5 were then all read from the cache
    assert sorted(cache.slot_owner.tolist()) == [1, 3, 4, 5] and (cache.slot_of_item >= 0).sum() == 4
    fused.clear()
    many = torch.arange(10, 20)  # more than fit: all fused, read right, at most 4 kept
    torch.testing.assert_close(cache.read(many, encode), expected(many, scale))
    assert sorted(fused) == many.tolist() and (cache.slot_of_item >= 0).sum() == 4
    assert all(cache.slot_of_item[owner] == slot for slot, owner in enumerate(cache.slot_owner.tolist()))
    assert cache.fused_items == 3 + 2 + 10, "it counts what it fused"


def test_a_refresh_after_the_weights_move_makes_every_entry_stale():
    scale, store = torch.ones(()), Store()
    cache = ReadThroughCache(n_items=10, width=3, capacity=8)
    encode, fused = encoder(scale)
    cache.refresh(store, [scale], encode)
    cache.read(torch.tensor([1, 2]), encode)
    scale.mul_(3)  # an in-place write, as an optimiser step
    torch.testing.assert_close(cache.read(torch.tensor([1, 2]), encode), expected([1, 2], 1.0)), "stale until refresh"
    cache.refresh(store, [scale], encode)
    fused.clear()
    torch.testing.assert_close(cache.read(torch.tensor([2, 1]), encode), expected([2, 1], 3.0))
    assert sorted(fused) == [1, 2]
    cache.refresh(store, [scale], encode)  # nothing changed: entries stay fresh
    fused.clear()
    cache.read(torch.tensor([1, 2]), encode)
    assert fused == []


def test_training_on_a_10000_item_catalogue_fuses_only_the_history_items_its_steps_read(small_config):
    """Steps as the trainer takes them (a refresh every 5): the catalogue cache fuses all 10,000 items at each
    refresh; the read-through cache fuses, without gradient, only history items of the steps since the refresh."""
    synthetic = small_config.data.synthetic.model_copy(update={"n_items": 10_000, "n_users": 100})
    data = generate_synthetic(small_config.data.model_copy(update={"synthetic": synthetic}), 0)
    assert data.store.n_rows == 10_001
    encoded, caches = {}, {}
    for kind in ("catalogue", "read"):
        cfg = with_updates(small_config, model={"variant": "em3", "content_cache": kind, "content_cache_every": 5})
        torch.manual_seed(0)
        model = Ranker(cfg.model, model_shapes(data)).train()
        caches[kind] = model.content.cache
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        fuse_rows, encoded[kind], allowed = model.content._fuse_rows, [], set()
        model.content._fuse_rows = lambda rows, store, log=encoded[kind], fuse=fuse_rows: (
            log.append(rows) or fuse(rows, store)
        )
        for step in range(10):
            if step % 5 == 0:
                model.refresh_content_cache(data.store)
                allowed = set()
            batch = make_batch(data.train, torch.arange(step * 64, (step + 1) * 64), data.store, model.content_inputs)
            allowed |= set(batch.history_items.tolist())
            before = len(encoded[kind])
            optimizer.zero_grad()
            model(batch)[1]["loss"].backward()
            optimizer.step()
            if kind == "read":
                new = set(torch.cat(encoded[kind][before:]).tolist()) if len(encoded[kind]) > before else set()
                assert new <= allowed, "an item no step since the refresh read was fused"
    assert sum(len(rows) for rows in encoded["catalogue"]) == 2 * data.store.n_rows
    assert [caches[kind].fused_items for kind in ("catalogue", "read")] == [sum(map(len, encoded[k])) for k in encoded]
    fused = sum(len(rows) for rows in encoded["read"])
    assert 0 < fused < data.store.n_rows / 4


def test_a_cache_restored_without_its_never_used_counter_never_gives_one_slot_to_two_items():
    """A checkpoint written before ``never_used_from`` existed restores it as 0 while the first slots are owned:
    the owned slots are skipped, so reads stay right and every slot keeps one item, also when a stale item keeps
    its own slot."""
    scale, store = torch.ones(()), Store()
    cache = ReadThroughCache(n_items=50, width=3, capacity=6)
    encode, _ = encoder(scale)
    cache.refresh(store, [scale], encode)
    cache.read(torch.tensor([1, 2, 3]), encode)
    cache.never_used_from.zero_()
    scale.mul_(2)
    cache.refresh(store, [scale], encode)  # 1, 2, 3 stale: re-fused into their own slots 0, 1, 2
    for rows in ([4, 1, 5], [6, 7, 8, 2], [1, 9]):
        torch.testing.assert_close(cache.read(torch.tensor(rows), encode), expected(rows, scale))
        owners = [owner for owner in cache.slot_owner.tolist() if owner >= 0]
        assert len(owners) == len(set(owners)), "an item in two slots"
        assert all(
            cache.slot_of_item[owner] == slot for slot, owner in enumerate(cache.slot_owner.tolist()) if owner >= 0
        )
        assert int((cache.slot_of_item >= 0).sum()) == len(owners), "an item points at a slot it does not own"


def test_a_full_cache_never_gives_a_stale_items_own_slot_to_another_item_of_the_same_read():
    scale, store = torch.ones(()), Store()
    cache = ReadThroughCache(n_items=50, width=3, capacity=3)
    encode, fused = encoder(scale)
    cache.refresh(store, [scale], encode)
    cache.read(torch.tensor([1, 2, 3]), encode)  # full
    scale.mul_(2)
    cache.refresh(store, [scale], encode)
    for rows in ([1, 4], [3, 1, 5], [1, 4, 5]):
        torch.testing.assert_close(cache.read(torch.tensor(rows), encode), expected(rows, scale))
    assert sorted(cache.slot_owner.tolist()) == [1, 4, 5]
    assert all(cache.slot_of_item[owner] == slot for slot, owner in enumerate(cache.slot_owner.tolist()))
    fused.clear()
    cache.read(torch.tensor([1, 4, 5]), encode)
    assert fused == [], "1, 4 and 5 were kept fresh"
