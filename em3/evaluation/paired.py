"""Paired comparisons of models on one test split (DESIGN §4): user-level bootstrap and seed-level t intervals.

Every model is scored on the same frozen test rows, so differences are paired. The user bootstrap resamples users
with replacement (a replicate weights each row by how often its user was drawn) and recomputes each model's AUC on
the same replicate, so the interval reflects which users happen to be in the test split; averaging over seeds inside
each replicate folds the training noise in as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of ``scores`` (n,) for binary ``labels`` (n,) under each row of ``weights`` (R, n); ties count one half."""
    order = np.argsort(scores, kind="stable")
    sorted_scores, positive = scores[order], labels[order] > 0
    w = weights[:, order]  # (R, n)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # first row of each tied group
    pos = np.add.reduceat(w * positive, starts, axis=1)  # (R, G) positive weight per score group
    neg = np.add.reduceat(w * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each group
    total = pos.sum(1) * neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (pos * (below + 0.5 * neg)).sum(1) / total, np.nan)


def user_bootstrap_weights(users: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row weights: per replicate, how many times each row's user was drawn (users with replacement)."""
    unique, user_index = np.unique(users, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(unique), size=(n_boot, len(unique)))
    counts = np.stack([np.bincount(row, minlength=len(unique)) for row in draws]).astype(np.float32)  # (R, U)
    return counts[:, user_index]


def bootstrap_auc_difference(
    labels: np.ndarray,
    users: np.ndarray,
    model_scores: Sequence[np.ndarray],
    baseline_scores: Sequence[np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, float]:
    """Seed-averaged AUC of a model minus that of the baseline, with a 95 % user-bootstrap percentile interval,
    absolute and relative to the baseline. ``*_scores``: one test-score vector per seed (paired by row)."""
    differences, relative = [], []
    for start in range(0, n_boot, chunk):
        weights = user_bootstrap_weights(users, min(chunk, n_boot - start), seed + start)
        model = np.mean([weighted_auc(labels, s, weights) for s in model_scores], axis=0)
        base = np.mean([weighted_auc(labels, s, weights) for s in baseline_scores], axis=0)
        differences.append(model - base)
        relative.append(model / base - 1)
    ones = np.ones((1, len(labels)))
    model = np.mean([weighted_auc(labels, s, ones)[0] for s in model_scores])
    base = np.mean([weighted_auc(labels, s, ones)[0] for s in baseline_scores])
    low, high = np.nanpercentile(np.concatenate(differences), [2.5, 97.5])
    rel_low, rel_high = (float(v) for v in np.nanpercentile(np.concatenate(relative), [2.5, 97.5]))
    absolute = {"diff": float(model - base), "low": float(low), "high": float(high)}
    return absolute | {"relative": float(model / base - 1), "relative_low": rel_low, "relative_high": rel_high}


def seed_interval(differences: Sequence[float]) -> dict[str, float]:
    """Mean of paired per-seed differences with a 95 % Student-t interval (NaN with fewer than two finite seeds)."""
    values = np.asarray([d for d in differences if d is not None and math.isfinite(d)], dtype=float)
    if len(values) < 2:
        mean = float(values.mean()) if len(values) else math.nan
        return {"diff": mean, "low": math.nan, "high": math.nan, "n": len(values)}
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    mean = float(values.mean())
    return {"diff": mean, "low": float(mean - half), "high": float(mean + half), "n": len(values)}
