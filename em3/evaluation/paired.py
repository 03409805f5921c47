"""Paired comparisons of models on one test split (DESIGN §2, §4): a two-level bootstrap over seeds and users, and
seed-level t intervals.

Every model is scored on the same frozen test rows and trained with the same seeds, so differences are paired. Each
bootstrap replicate redraws both levels with replacement: the seeds (a drawn seed brings the model's and the
baseline's run of that seed) and the test users (a replicate weights each row by how often its user was drawn). Seed
noise on the sample is as large as user noise, so an interval over users alone would be too narrow.
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
    """Seed-averaged AUC of a model minus that of the baseline, with a 95 % percentile interval of the two-level
    (seeds and users) bootstrap, absolute and relative to the baseline. ``*_scores``: one test-score vector per
    seed, ``model_scores[i]`` and ``baseline_scores[i]`` from the same seed, all paired by row."""
    if len(model_scores) != len(baseline_scores) or not len(model_scores):
        raise ValueError(
            f"paired by seed: got {len(model_scores)} model and {len(baseline_scores)} baseline score vectors; "
            "pass the runs of the seeds both have, in the same order"
        )
    seed_draws = np.random.default_rng([seed, 1])  # its own stream: the user draws stay those of the same seed
    differences, relative = [], []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        weights = user_bootstrap_weights(users, size, seed + start)  # (R, n)
        drawn = seed_draws.integers(0, len(model_scores), size=(size, len(model_scores)))  # (R, S) seed indices
        replicate = np.arange(size)[:, None]
        model = np.stack([weighted_auc(labels, s, weights) for s in model_scores])[drawn, replicate].mean(1)  # (R,)
        base = np.stack([weighted_auc(labels, s, weights) for s in baseline_scores])[drawn, replicate].mean(1)
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
