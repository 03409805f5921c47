"""Paired comparisons of models on one test split (DESIGN §2, §4): a two-level bootstrap over seeds and units (the
test users for AUC, the scored items for the similarities), and seed-level t intervals.

Every model is scored on the same frozen test rows and trained with the same seeds, so differences are paired. Each
bootstrap replicate redraws both levels with replacement: the seeds (a drawn seed brings the model's and the
baseline's run of that seed) and the units (a replicate weights each row by how often its unit was drawn). Seed
noise on the sample is as large as user noise, so an interval over users alone would be too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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


def unit_bootstrap_weights(units: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row weights: per replicate, how many times each row's unit (a user, an item) was drawn, the units
    drawn with replacement."""
    unique, unit_index = np.unique(units, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(unique), size=(n_boot, len(unique)))
    counts = np.stack([np.bincount(row, minlength=len(unique)) for row in draws]).astype(np.float32)  # (R, U)
    return counts[:, unit_index]


def weighted_nanmean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of the finite ``values`` (n,) under each row of ``weights`` (R, n); NaN values take no part."""
    finite = np.isfinite(values)
    w = weights[:, finite]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ values[finite].astype(np.float64)) / w.sum(1)


Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (one seed's per-row values, weights (R, n)) -> (R,)


def bootstrap_auc_difference(
    labels: np.ndarray,
    users: np.ndarray,
    model_scores: Sequence[np.ndarray],
    baseline_scores: Sequence[np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Seed-averaged AUC of a model minus that of the baseline, with a 95 % percentile interval of the two-level
    (seeds and users) bootstrap, absolute and relative to the baseline. ``*_scores``: one test-score vector per
    seed, ``model_scores[i]`` and ``baseline_scores[i]`` from the same seed, all paired by row."""

    def statistic(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return weighted_auc(labels, scores, weights)

    return two_level_bootstrap(statistic, users, model_scores, baseline_scores, n_boot, seed)


def bootstrap_mean_difference(
    model_values: Sequence[np.ndarray], baseline_values: Sequence[np.ndarray], n_boot: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Seed-averaged mean of per-item scores (e.g. behaviour similarity of each popular item; NaN: not defined) of a
    model minus the baseline's, with the 95 % interval of the two-level bootstrap over seeds and items; keys as
    ``bootstrap_auc_difference``'s."""
    units = np.arange(len(model_values[0]) if len(model_values) else 0)  # each item its own unit
    return two_level_bootstrap(weighted_nanmean, units, model_values, baseline_values, n_boot, seed)


def two_level_bootstrap(
    statistic: Statistic,
    units: np.ndarray,
    model_values: Sequence[np.ndarray],
    baseline_values: Sequence[np.ndarray],
    n_boot: int,
    seed: int,
    chunk: int = 100,
) -> dict[str, float]:
    """The seed-averaged ``statistic`` of a model minus the baseline's, and its 95 % percentile interval when every
    replicate redraws the seeds (a drawn seed brings both runs of that seed) and the units (``units``: (n,) each
    row's unit; a replicate weights a row by how often its unit was drawn); absolute and relative to the baseline."""
    if len(model_values) != len(baseline_values) or not len(model_values):
        raise ValueError(
            f"paired by seed: got {len(model_values)} model and {len(baseline_values)} baseline value vectors; "
            "pass the runs of the seeds both have, in the same order"
        )
    seed_draws = np.random.default_rng([seed, 1])  # its own stream: the unit draws stay those of the same seed
    differences, relative = [], []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        weights = unit_bootstrap_weights(units, size, seed + start)  # (R, n)
        drawn = seed_draws.integers(0, len(model_values), size=(size, len(model_values)))  # (R, S) seed indices
        replicate = np.arange(size)[:, None]
        model = np.stack([statistic(v, weights) for v in model_values])[drawn, replicate].mean(1)  # (R,)
        base = np.stack([statistic(v, weights) for v in baseline_values])[drawn, replicate].mean(1)
        differences.append(model - base)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative.append(model / base - 1)
    ones = np.ones((1, len(units)))
    model = np.mean([statistic(v, ones)[0] for v in model_values])
    base = np.mean([statistic(v, ones)[0] for v in baseline_values])
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
