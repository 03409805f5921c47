"""Behaviour histories without leaks: for each impression, the user's positives strictly *before* it.

"Before" is at the resolution of the time key given: days for day-stamped purchase logs (a same-day basket never
enters: same-day purchases inflated a simple cosine score from AUC 0.59 to 0.69 on the H&M sample, DESIGN §4), or
the events' timestamps for logs with a time of day (events at the very same timestamp never enter either).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

HistoryRule = Literal["earlier_days", "earlier_events"]


def earlier_histories(
    user: np.ndarray, time: np.ndarray, item: np.ndarray, label: np.ndarray, length: int
) -> np.ndarray:
    """(N,) arrays → (N, length) item rows the same user clicked at a strictly earlier ``time`` (any integer key:
    days or timestamps), most recent first, 0-padded."""
    history = np.zeros((len(user), length), dtype=np.int64)
    order = np.lexsort((time, user))  # by user, then time
    boundaries = np.flatnonzero(np.diff(user[order])) + 1
    for rows in np.split(order, boundaries):
        positives = rows[label[rows] == 1]  # in time order
        positive_times, positive_items = time[positives], item[positives]
        earlier = np.searchsorted(positive_times, time[rows], side="left")  # positives strictly before each row
        for row, end in zip(rows, earlier, strict=True):
            recent = positive_items[max(0, end - length) : end][::-1]
            history[row, : len(recent)] = recent
    return history


def has_time_of_day(ts: pd.Series) -> bool:
    """Whether timestamps carry a time of day (some event not at midnight): a day-stamped log has none."""
    if not pd.api.types.is_datetime64_any_dtype(ts):
        ts = pd.to_datetime(ts)
    return bool((ts.dropna() != ts.dropna().dt.normalize()).any())


def history_time(ts: pd.Series, rule: HistoryRule | Literal["auto"]) -> tuple[np.ndarray, HistoryRule]:
    """The integer time key histories are cut at, and the rule applied (``auto``: ``earlier_events`` when the
    timestamps carry a time of day, else ``earlier_days``)."""
    ts = pd.to_datetime(ts)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert(None)  # UTC
    if rule == "auto":
        rule = "earlier_events" if has_time_of_day(ts) else "earlier_days"
    unit = "datetime64[D]" if rule == "earlier_days" else "datetime64[ns]"
    return ts.to_numpy(unit).astype(np.int64), rule
