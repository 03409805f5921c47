"""Embedding-space similarity metrics (DESIGN §2): material similarity of cold items, behaviour similarity of
popular items. Both find an item's k nearest other items in one space (cosine) and score them in another.

Neighbours are restricted to candidate items on which the second similarity is defined (non-zero vectors); the
padding row 0 and the item itself are never neighbours. k-NN runs on chunks of queries, so memory stays at about
``CHUNK_ELEMENTS`` similarities however many items there are.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from em3.data.mapped import MappedRows

CHUNK_ELEMENTS = 1 << 24  # query × item similarities held at once (64 MB of float32)

RANDOM_DIM = 64  # width of the chance reference's Gaussian embeddings (any width: they know nothing)
RANDOM_DRAWS = 5  # the chance reference is their mean: one draw moves it by about 0.001 on the benchmark's logs
Vectors = np.ndarray | sp.spmatrix | sp.sparray | MappedRows  # MappedRows: e.g. em3.data.content_similarity's table


def material_similarity(
    id_embeddings: np.ndarray, raw_content: np.ndarray, cold_items: np.ndarray, k: int
) -> tuple[float, np.ndarray]:
    """Mean raw-content cosine of each cold item to its k nearest items by ID embedding.

    ``id_embeddings`` (n_rows, E) and ``raw_content`` (n_rows, D: ``unit_concat`` of the pooled features) are indexed
    by item row; items without content are not neighbours. Returns the mean over cold items and the per-item scores
    (len(cold_items),), NaN for a cold item without content.
    """
    per_item = neighbour_similarity(id_embeddings, raw_content, cold_items, k)
    return _nanmean(per_item), per_item


def behaviour_similarity(
    content_embeddings: np.ndarray, interaction_vectors: Vectors, popular_items: np.ndarray, k: int
) -> tuple[float, np.ndarray]:
    """Mean behaviour cosine of each popular item to its k nearest items by content embedding.

    ``interaction_vectors`` (n_rows, n_users) are positive counts per item and user in the period measured (the
    evaluated split for the held-out figure, training for the in-sample one; sparse is fine); items without
    interactions are not neighbours. Returns the mean over popular items and the per-item scores
    (len(popular_items),), NaN for an item without interactions.
    """
    per_item = neighbour_similarity(content_embeddings, interaction_vectors, popular_items, k)
    return _nanmean(per_item), per_item


def behaviour_references(
    frozen_content: np.ndarray, interaction_vectors: Vectors, popular_items: np.ndarray, k: int, seed: int = 0
) -> dict[str, float]:
    """What a behaviour similarity is read against, on the same popular items and period: ``frozen``, the frozen
    pooled content's own (what neighbourhood keeping copies), and ``random``, the mean of seeded Gaussian embeddings'
    (neighbours that know nothing: chance). Far apart, the metric can tell content embeddings apart; close together,
    every embedding scores near chance whatever it learned."""
    rng = np.random.default_rng(seed)
    draws = [
        behaviour_similarity(
            rng.standard_normal((len(frozen_content), RANDOM_DIM)), interaction_vectors, popular_items, k
        )[0]
        for _ in range(RANDOM_DRAWS)
    ]
    return {
        "frozen": behaviour_similarity(frozen_content, interaction_vectors, popular_items, k)[0],
        "random": float(np.mean(draws)),
    }


def interaction_matrix(items: np.ndarray, users: np.ndarray, n_items: int, n_users: int) -> sp.csr_array:
    """Item × user counts of the given (item, user) pairs, e.g. the positive training rows."""
    counts = np.ones(len(items), dtype=np.float32)
    return sp.csr_array((counts, (items, users)), shape=(n_items, n_users))  # duplicates are summed


def neighbour_similarity(search: np.ndarray, target: Vectors, queries: np.ndarray, k: int) -> np.ndarray:
    """For each query item, the mean ``target`` cosine to its k nearest other items by ``search`` cosine.

    ``search`` (n_rows, E) and ``target`` (n_rows, D) are indexed by item row. Candidate neighbours are the items
    with a non-zero target vector, never row 0 nor the query itself. Returns (len(queries),), NaN where the query's
    own target vector is zero or it has no candidate.
    """
    if sp.issparse(target):
        target = sp.csr_array(target)
    queries = np.asarray(queries, dtype=np.int64)
    candidates = nonzero_rows(target)
    candidates[0] = False
    result = np.full(len(queries), np.nan)
    if not candidates.any():
        return result
    k = min(k, int(candidates.sum()))
    unit = torch.nn.functional.normalize(torch.as_tensor(np.asarray(search), dtype=torch.float32), dim=1)
    blocked = torch.from_numpy(~candidates)
    chunk = max(1, CHUNK_ELEMENTS // max(len(unit), k * target.shape[1]))
    for begin in range(0, len(queries), chunk):
        rows = torch.from_numpy(queries[begin : begin + chunk])
        scores = unit[rows] @ unit.T  # (q, n_rows)
        scores[:, blocked] = -math.inf
        scores[torch.arange(len(rows)), rows] = -math.inf  # never the item itself
        top, neighbours = scores.topk(k, dim=1)  # (q, k)
        valid = torch.isfinite(top).numpy()
        cosines = _paired_cosine(target, rows.repeat_interleave(k).numpy(), neighbours.reshape(-1).numpy())
        cosines = np.where(valid, cosines.reshape(-1, k), 0.0)  # (q, k)
        with np.errstate(invalid="ignore"):
            result[begin : begin + len(rows)] = cosines.sum(1) / valid.sum(1)
    result[~candidates[queries]] = np.nan
    return result


def _paired_cosine(vectors: Vectors, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos(vectors[a[i]], vectors[b[i]]) for each i (P pairs), 0 where either vector is zero."""
    va, vb = vectors[a], vectors[b]  # (P, D)
    if sp.issparse(vectors):
        dot = va.multiply(vb).sum(axis=1)  # csr_array rows: (P,)
        norms = np.sqrt(va.multiply(va).sum(axis=1) * vb.multiply(vb).sum(axis=1))
    else:
        va, vb = np.asarray(va, dtype=np.float32), np.asarray(vb, dtype=np.float32)
        dot = (va * vb).sum(1)
        norms = np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1)
    return np.divide(dot, norms, out=np.zeros(len(a)), where=norms > 0)


def nonzero_rows(vectors: Vectors) -> np.ndarray:
    """(n_rows,) True where the row has a non-zero entry (mapped rows are read a chunk at a time)."""
    if sp.issparse(vectors):
        return vectors.count_nonzero(axis=1) > 0
    if isinstance(vectors, MappedRows):
        chunk = max(1, CHUNK_ELEMENTS // max(1, vectors.shape[1]))
        starts = range(0, len(vectors), chunk)
        return np.concatenate([vectors[np.arange(s, min(s + chunk, len(vectors)))].numpy().any(1) for s in starts])
    return np.asarray(vectors).any(axis=1)


def _nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
