"""Ranking metrics (DESIGN §2): AUC, GAUC, logloss, overall and on the cold-start slice."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) statistic, ties averaged; NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Per-user AUC weighted by the user's impressions; users with one class only are skipped."""
    users, labels, scores = np.asarray(users), np.asarray(labels), np.asarray(scores)
    order = np.argsort(users, kind="stable")
    boundaries = np.flatnonzero(np.diff(users[order])) + 1
    total = weight = 0.0
    for rows in np.split(order, boundaries):
        value = auc(labels[rows], scores[rows])
        if not math.isnan(value):
            total += value * len(rows)
            weight += len(rows)
    return total / weight if weight else math.nan


def logloss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if len(y) else math.nan


def ranking_metrics(users: np.ndarray, labels: np.ndarray, logits: np.ndarray, cold: np.ndarray) -> dict[str, float]:
    """AUC, GAUC and logloss on all rows and on the cold-start rows (``cold`` is a boolean row mask)."""
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    cold = np.asarray(cold, dtype=bool)
    result: dict[str, float] = {"rows": int(len(labels)), "cold_rows": int(cold.sum())}
    for prefix, rows in (("", slice(None)), ("cold_", cold)):
        result[f"{prefix}auc"] = auc(labels[rows], logits[rows])
        result[f"{prefix}gauc"] = gauc(users[rows], labels[rows], logits[rows])
        result[f"{prefix}logloss"] = logloss(labels[rows], probabilities[rows])
    return result
