"""Behaviour histories without leaks: for each impression, the user's positives strictly *before* it.

"Before" is at the resolution of the time key given: days for day-stamped purchase logs (a same-day basket never
enters: same-day purchases inflated a simple cosine score from AUC 0.59 to 0.69 on the H&M sample, DESIGN §4), or
the events' timestamps for logs with a time of day (events at the very same timestamp never enter either).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd

HistoryRule = Literal["earlier_days", "earlier_events"]
_CHUNK_VALUES = 1 << 22  # history entries computed at once


def earlier_histories(
    user: np.ndarray, time: np.ndarray, item: np.ndarray, label: np.ndarray, length: int
) -> np.ndarray:
    """(N,) arrays → (N, length) item rows the same user clicked at a strictly earlier ``time`` (any integer key:
    days or timestamps), most recent first (ties in row order), 0-padded."""
    history = np.zeros((len(user), length), dtype=np.int64)
    for begin, values in history_chunks(user, time, item, label, length, np.arange(len(user))):
        history[begin : begin + len(values)] = values
    return history


def history_chunks(
    user: np.ndarray, time: np.ndarray, item: np.ndarray, label: np.ndarray, length: int, rows: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """``earlier_histories`` of ``rows`` (row numbers, any order), as (offset into ``rows``, histories) pieces of
    at most ``_CHUNK_VALUES`` entries, so that a caller can write a log of any size to disk in bounded memory."""
    # (user, time) as one sortable integer: the ranks of both, user major (below N² < 2⁶³ for N < 3·10⁹ rows).
    _, user_rank = np.unique(user, return_inverse=True)
    times, time_rank = np.unique(time, return_inverse=True)
    key = user_rank.astype(np.int64) * len(times) + time_rank
    positives = np.flatnonzero(label == 1)
    positives = positives[np.argsort(key[positives], kind="stable")]  # by user, then time, then row
    positive_key, positive_item = key[positives], np.append(item[positives], 0)  # index -1 reads the 0 padding
    offsets, step = np.arange(length), max(1, _CHUNK_VALUES // length)
    for begin in range(0, len(rows), step):
        chunk = rows[begin : begin + step]
        end = np.searchsorted(positive_key, key[chunk], side="left")  # the user's positives strictly before: ..end
        first = np.searchsorted(positive_key, key[chunk] - time_rank[chunk], side="left")  # the user's first
        taken = end[:, None] - 1 - offsets  # (chunk, length): most recent first
        yield begin, positive_item[np.where(taken >= first[:, None], taken, -1)]


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
