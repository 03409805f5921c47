"""Training data in model form: integer-indexed impressions with behaviour histories, and batches of them.

Index conventions: user and item index 0 mean unknown/padding; item indices are rows of the ``TokenStore``.
A batch carries the content of its *unique* target items and of its *unique* history items, each encoded once,
and only the content the model reads (``ContentInputs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
import torch

from em3.data.content_similarity import split_similarity
from em3.data.token_store import ItemContent, TokenStore


@dataclass
class Split:
    """Impressions of one period; row r is (user[r], item[r], context[r], numeric[r], history[r]) → label[r]."""

    user: torch.Tensor  # (N,) int64
    item: torch.Tensor  # (N,) int64
    context: torch.Tensor  # (N, F) int64 categorical context fields, 0 = unknown
    history: torch.Tensor  # (N, L) int64 earlier clicked items, most recent first, 0 = padding
    label: torch.Tensor  # (N,) float32 in {0, 1}
    cold: torch.Tensor  # (N,) bool: the item had fewer than cold_max_train interactions in train
    numeric: torch.Tensor | None = None  # (N, G) float32 numeric context, finite (None: no numeric features)

    def __post_init__(self) -> None:
        if self.numeric is None:
            self.numeric = torch.zeros(len(self.label), 0)

    def __len__(self) -> int:
        return len(self.label)

    def rows(self, index: torch.Tensor) -> Split:
        return Split(*(getattr(self, f.name)[index] for f in fields(self)))


@dataclass
class RankingData:
    train: Split
    valid: Split
    test: Split
    n_users: int  # including index 0
    context_cardinalities: tuple[int, ...]
    store: TokenStore
    item_train_interactions: np.ndarray  # (n_rows,) train impressions per item row (purchases for purchase logs)
    inputs: dict = field(default_factory=dict)  # what feeds the model (context and numeric features, history rule)
    user_ids: np.ndarray | None = None  # (n_users - 1,) the id of user index i + 1 (tables; None: synthetic)
    context_vocabularies: list[list[str]] = field(default_factory=list)  # per context field, the value of code i + 1

    @property
    def numeric_dim(self) -> int:
        return self.train.numeric.shape[1]

    @property
    def n_items(self) -> int:
        return self.store.n_rows


ContentKind = Literal["tokens", "pooled"] | None


@dataclass(frozen=True)
class ContentInputs:
    """The item content a model reads per batch, for targets and for history items: token tensors (which include
    the pooled vectors), pooled vectors only, or nothing."""

    target: ContentKind = None
    history: ContentKind = None
    similarity: bool = False  # the frozen-content cosines of target and history (em3.data.content_similarity)


@dataclass
class Batch:
    user: torch.Tensor  # (B,)
    item: torch.Tensor  # (B,)
    context: torch.Tensor  # (B, F)
    numeric: torch.Tensor  # (B, G)
    history: torch.Tensor  # (B, L)
    label: torch.Tensor  # (B,)
    target_pos: torch.Tensor  # (B,) row of each target in target_items
    history_pos: torch.Tensor  # (B, L) row of each history item in history_items
    target_items: torch.Tensor  # (Ut,) unique target items
    history_items: torch.Tensor  # (Uh,) unique history items
    target_content: ItemContent | None  # content of target_items (None for models without content)
    history_content: ItemContent | None
    similarity: torch.Tensor | None = None  # (B, 2) frozen-content cosines of target and history, when asked for

    def to(self, device: torch.device | str) -> Batch:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device) if value is not None else None
        return Batch(**moved)


def make_batch(split: Split, index: torch.Tensor, store: TokenStore, inputs: ContentInputs) -> Batch:
    part = split.rows(index)
    target_items, target_pos = torch.unique(part.item, return_inverse=True)
    history_items, history_pos = torch.unique(part.history, return_inverse=True)
    return Batch(
        user=part.user,
        item=part.item,
        context=part.context,
        numeric=part.numeric,
        history=part.history,
        label=part.label,
        target_pos=target_pos,
        history_pos=history_pos,
        target_items=target_items,
        history_items=history_items,
        target_content=_gather(store, target_items, inputs.target),
        history_content=_gather(store, history_items, inputs.history),
        similarity=split_similarity(store, split)[index] if inputs.similarity else None,
    )


def _gather(store: TokenStore, items: torch.Tensor, kind: ContentKind) -> ItemContent | None:
    return None if kind is None else store.gather(items, tokens=kind == "tokens")


def epoch_order(n_rows: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled row order of one epoch: a pure function of (seed, epoch), so training can resume mid-epoch."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n_rows, generator=generator)


def batch_indices(order: torch.Tensor, batch_size: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Consecutive batches of ``order``, from batch number ``start`` on."""
    for begin in range(start * batch_size, len(order), batch_size):
        yield order[begin : begin + batch_size]
