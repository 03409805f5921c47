"""Per-item caches of em3's fused content (the FQ-Former's output without gradient), read where a step does not fuse
an item itself: history items in training (``lora`` / ``frozen`` history), every item in prediction.

Both say the same thing by "fresh": an entry is fresh when it was fused after the latest ``refresh``; the trainer
calls ``refresh`` every ``model.content_cache_every`` steps, so an entry read in training is at most that many
optimiser steps old, and prediction refreshes first, so it reads the current weights. ``refresh`` is a no-op when
neither the weights nor the store changed since the last one (predicting valid then test fuses once).

- ``CatalogueCache`` (``model.content_cache: catalogue``): ``refresh`` fuses the whole catalogue. Every refresh
  costs the catalogue's size, whatever the steps read: the cost that stops em3 at millions of items.
- ``ReadThroughCache`` (``model.content_cache: read``): ``refresh`` only marks every entry stale; an item is fused
  when a step reads it and its entry is missing or stale. At most ``capacity`` vectors are kept; when full, the
  entries read longest ago make room. A step's cost is set by the items it reads, never by the catalogue; the
  per-item bookkeeping is one int64 per catalogue item (its slot).

Under DDP each process has its own read-through cache and fuses an item when *it* reads it, so ranks hold fusions
of different ages (each within the bound) and a sharded run is not the one-process run to rounding, as it is with
the catalogue cache (tests/train/test_ddp.py).

Caches are derived from the weights: they are not saved with the model; checkpoints carry them for exact resume.
Each counts the items it has fused (``fused_items``): the work a benchmark compares (bench/catalogue_scale.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch import nn

from em3.data.token_store import TokenStore

Encoder = Callable[[torch.Tensor, TokenStore], torch.Tensor]  # item rows (N,) of the store -> fused vectors (N, F)
NOT_REFRESHED = "no item content and no fresh cache: call Ranker.refresh_content_cache(store) first"


class StoreBinding:
    """Which store and weights a cache was last refreshed for. The store is held by a weak reference, so that a new
    store is never taken for a freed one (CPython may reuse an ``id``); ``Tensor._version`` counts in-place writes
    to the weights (optimiser steps, state-dict loads)."""

    def __init__(self) -> None:
        self._store: weakref.ref | None = None
        self._versions: tuple[int, ...] | None = None

    def resume(self, store: TokenStore) -> None:
        """Hold ``store`` after a checkpoint restored the cache, so that reads may fuse from it; the next refresh
        counts as a change, as it would have in the run that wrote the checkpoint."""
        self._store, self._versions = weakref.ref(store), None

    def changed(self, store: TokenStore, weights: list[torch.Tensor]) -> bool:
        versions = tuple(p._version for p in weights)
        same = self._store is not None and self._store() is store and versions == self._versions
        self._store, self._versions = weakref.ref(store), versions
        return not same

    @property
    def store(self) -> TokenStore:
        store = self._store() if self._store is not None else None
        if store is None:
            raise RuntimeError(NOT_REFRESHED)
        return store


class CatalogueCache(nn.Module):
    """Every item of the catalogue fused at each refresh (n_items, F)."""

    def __init__(self, n_items: int, width: int):
        super().__init__()
        self.register_buffer("values", torch.zeros(n_items, width), persistent=False)
        self.register_buffer("ready", torch.tensor(False), persistent=False)
        self.binding = StoreBinding()
        self.fused_items = 0

    @torch.no_grad()
    def refresh(self, store: TokenStore, weights: list[torch.Tensor], encode: Encoder) -> None:
        if self.binding.changed(store, weights) or not self.ready:
            self.values[: store.n_rows] = encode(torch.arange(store.n_rows), store)
            self.ready.fill_(True)
            self.fused_items += store.n_rows

    def read(self, items: torch.Tensor, encode: Encoder) -> torch.Tensor:
        if not self.ready:
            raise RuntimeError(NOT_REFRESHED)
        return self.values.index_select(0, items)


class ReadThroughCache(nn.Module):
    """A bounded cache filled as items are read: ``capacity`` vectors, each with the refresh generation it was fused
    in and the read that used it last."""

    def __init__(self, n_items: int, width: int, capacity: int):
        super().__init__()
        self.register_buffer("values", torch.zeros(capacity, width), persistent=False)
        self.register_buffer("slot_owner", torch.full((capacity,), -1, dtype=torch.long), persistent=False)
        self.register_buffer("fused_in", torch.full((capacity,), -1, dtype=torch.long), persistent=False)
        self.register_buffer("last_read", torch.zeros(capacity, dtype=torch.long), persistent=False)
        self.register_buffer("slot_of_item", torch.full((n_items,), -1, dtype=torch.long), persistent=False)
        self.register_buffer("generation", torch.tensor(-1), persistent=False)  # -1: never refreshed
        self.register_buffer("reads", torch.tensor(0), persistent=False)
        self.register_buffer("never_used_from", torch.tensor(0), persistent=False)  # slots from here: never used
        self.binding = StoreBinding()
        self.fused_items = 0

    @torch.no_grad()
    def refresh(self, store: TokenStore, weights: list[torch.Tensor], encode: Encoder) -> None:
        if self.binding.changed(store, weights) or self.generation < 0:
            self.generation += 1

    @torch.no_grad()
    def read(self, items: torch.Tensor, encode: Encoder) -> torch.Tensor:
        """Fused vectors (N, F) of the item rows ``items`` (N,): fresh entries as cached, the others fused now."""
        if self.generation < 0:
            raise RuntimeError(NOT_REFRESHED)
        self.reads += 1
        slots = self.slot_of_item[items]  # (N,), -1: not cached
        cached = slots >= 0
        fresh = (self.fused_in[slots] == self.generation).logical_and_(cached)  # (N,)
        self.last_read[slots[cached]] = self.reads  # in use by this read: no other item may take these slots
        out = self.values.index_select(0, slots.clamp(min=0))  # (N, F), stale rows replaced below; [] is 2x slower
        if bool(fresh.all()):
            return out
        stale, inverse = torch.unique(items[~fresh], return_inverse=True)  # (M,), each stale row's item in it
        vectors = encode(stale, self.binding.store).float()  # (M, F)
        out[~fresh] = vectors[inverse]
        self.fused_items += len(stale)
        self._store(stale, self.slot_of_item[stale], vectors)
        return out

    def _store(self, items: torch.Tensor, slots: torch.Tensor, vectors: torch.Tensor) -> None:
        """Keep ``vectors`` of ``items``: in their own slots where they have one, else in slots never used, else in
        the slots read longest ago, never one this read used. When the read holds more items than fit, the rest
        are not kept."""
        new = (slots < 0).nonzero().squeeze(-1)  # (K,) items without a slot
        capacity = len(self.slot_owner)
        start = int(self.never_used_from)
        unused = torch.arange(start, min(start + len(new), capacity), device=slots.device)  # untouched first: no search
        self.never_used_from.fill_(start + len(unused))
        unused = unused[self.slot_owner[unused] < 0]  # (a checkpoint from before this counter may own some)
        self.last_read[unused] = self.reads
        taken = unused
        if len(new) > len(unused):  # full: evict the slots read longest ago
            spare = self.last_read.masked_fill(self.last_read == self.reads, torch.iinfo(torch.long).max)  # (C,)
            room = min(len(new) - len(unused), int((spare != torch.iinfo(torch.long).max).sum()))
            taken = torch.cat([unused, torch.topk(spare, room, largest=False).indices])
        evicted = self.slot_owner[taken]
        self.slot_of_item[evicted[evicted >= 0]] = -1
        slots = slots.clone()
        slots[new[: len(taken)]] = taken
        kept = slots >= 0
        items, slots, vectors = items[kept], slots[kept], vectors[kept]
        self.values[slots] = vectors
        self.slot_owner[slots] = items
        self.slot_of_item[items] = slots
        self.fused_in[slots] = self.generation
        self.last_read[slots] = self.reads
