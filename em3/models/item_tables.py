"""Whole-catalogue item embedding tables, and ID embeddings for the items that training never showed.

An item absent from every training row keeps the random initial ID embedding: on the H&M sample that is 89 % of the
cold test items, so "the nearest items by ID embedding" (material similarity, similar-item retrieval) is noise for
them whatever the model. A model with a content tower knows what such an item looks and reads like, and its ID and
content spaces are related (CIC aligns them in em3): a ridge regression from content to ID embedding, fitted on the
items training showed, predicts the ID embedding of the others.
"""

from __future__ import annotations

import numpy as np
import torch

from em3.data.token_store import TokenStore
from em3.models.ranker import Ranker

RIDGE = 1.0  # against the sum of squares of thousands of O(1) content rows: a mild shrinkage


@torch.no_grad()
def item_embedding_tables(
    model: Ranker, store: TokenStore, batch_size: int, content_rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """ID (and content, if the model has one) embeddings of every item row (n_rows, E) each. The content tower
    encodes only ``content_rows`` when given (the others' content rows are zeros): a caller that reads a few items'
    content does not pay for the catalogue's."""
    tables = {"id": model.item_embed.weight.detach().float().cpu().numpy()[: store.n_rows].copy()}
    if not model.uses_content:
        return tables
    device = next(model.parameters()).device
    rows = torch.arange(store.n_rows) if content_rows is None else torch.as_tensor(content_rows, dtype=torch.long)
    content = np.zeros_like(tables["id"])
    for chunk in rows.split(batch_size):
        embeddings = model.item_embeddings(chunk.to(device), store.gather(chunk).to(device))
        content[chunk.numpy()] = embeddings["content"].float().cpu().numpy()  # (b, E)
    tables["content"] = content
    return tables


def ridge_fit(inputs: np.ndarray, targets: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """(D + 1, E) weights, bias last, minimising ||[inputs, 1] W - targets||² + ridge ||W||² (float64)."""
    design = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1).astype(np.float64)
    gram = design.T @ design + ridge * np.eye(design.shape[1])
    return np.linalg.solve(gram, design.T @ targets.astype(np.float64))


@torch.no_grad()
def fill_unseen_item_ids(
    model: Ranker, store: TokenStore, seen: np.ndarray, batch_size: int = 1024, ridge: float = RIDGE
) -> int:
    """Set the ID embedding of every item row that ``seen`` (n_rows,) marks False (row 0, padding, excepted) to its
    prediction from the item's content embedding, and keep the map in the model (``Ranker.content_to_id``, saved
    with it), so that items first met when serving get their ID the same way; returns how many rows were set (0 for
    a model without content or without seen items to fit on)."""
    if model.content is None:
        return 0
    seen = seen.copy()
    seen[0] = False
    unseen = np.flatnonzero(~seen)[1:]  # row 0, padding, is never filled
    if not seen.any() or not len(unseen):
        return 0
    tables = item_embedding_tables(model, store, batch_size)  # only when there is something to fill
    weights = ridge_fit(tables["content"][seen], tables["id"][seen], ridge)  # (D + 1, E)
    table = model.item_embed.weight
    model.content_to_id.copy_(torch.from_numpy(weights).to(model.content_to_id))
    predicted = model.id_from_content(torch.from_numpy(tables["content"][unseen]).to(table))  # (n_unseen, E)
    table[torch.from_numpy(unseen).to(table.device)] = predicted
    return len(unseen)
