"""Test rows by which modalities their item has (DESIGN §4: missing modalities are normal): a model that copes
with a photo-only item as well as with a photo-and-text one shows it here, slice by slice."""

from __future__ import annotations

import numpy as np

from em3.data.token_store import TokenStore
from em3.metrics import auc

MODALITY_SLICES = ("image+text", "image only", "text only", "neither")  # code = 2 × (no image) + (no text)


def item_modalities(store: TokenStore, items: np.ndarray) -> np.ndarray:
    """(N,) slice code of each item row in ``items`` (N,): an index into ``MODALITY_SLICES``, from the store's
    masks (row 0, padding, has neither)."""
    items = np.asarray(items)
    unique, inverse = np.unique(items, return_inverse=True)  # read each item's masks once
    image, text = (store.read_rows(f"{m}_mask", unique).any(1) for m in ("image", "text"))
    return (2 * ~image + ~text).astype(np.int64)[inverse]


def modality_slices(codes: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks of the slices that have rows, by name, from ``item_modalities`` codes."""
    return {name: codes == code for code, name in enumerate(MODALITY_SLICES) if (codes == code).any()}


def auc_by_modality(labels: np.ndarray, logits: np.ndarray, codes: np.ndarray) -> dict[str, dict[str, float]]:
    """Per slice with rows: its row count, positive count and AUC (NaN with one class only)."""
    return {
        name: {"rows": int(rows.sum()), "positives": int(labels[rows].sum()), "auc": auc(labels[rows], logits[rows])}
        for name, rows in modality_slices(codes).items()
    }
