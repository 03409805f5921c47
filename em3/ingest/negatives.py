"""Negatives for purchase logs, built without the leaks measured in DESIGN.md §4.

For every user-day with p purchases, k·p items are drawn without replacement by popularity among the items
sold in the same calendar month, never an item that user bought that day. Whole-log popularity or uniform
draws would make "the item is new" predict the label, since the catalogue turns over fast. Draws are batched:
candidates are drawn with replacement by popularity, bought items and repeats are dropped, and the short
user-days draw again (this is exactly weighted sampling without replacement). A user-day whose month has fewer
than k·p other items gets them all. Negative j of a user-day belongs to its purchase j // k (ordered by item
id) and copies that purchase's sales channel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_ROUNDS = 64


def sample_negatives(positives: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Negatives for ``positives`` (one row per user, item, day: ``user_id``, ``item_id``, ``ts``,
    ``sales_channel_id``) with the same columns plus ``label`` = 0 and ``units`` = 0; deterministic in
    ``seed``."""
    if positives.empty:
        return positives.assign(label=0, units=0)
    rng = np.random.default_rng(seed)
    pos = positives.sort_values(["ts", "user_id", "item_id"], ignore_index=True)
    item, items = pd.factorize(pos["item_id"])
    day_code = pos.groupby(["ts", "user_id"], sort=False).ngroup().to_numpy()  # user-days, in sorted order
    n_days, n_items = day_code.max() + 1, len(items)
    day_first = np.searchsorted(day_code, np.arange(n_days))
    month = (pos["ts"].dt.year * 12 + pos["ts"].dt.month).to_numpy()

    # Popularity pool: (month, item) rows sorted by month, one cumulative weight array over all months.
    pool = pd.DataFrame({"month": month, "item": item}).value_counts().sort_index()
    pool_month, pool_item = (pool.index.get_level_values(i).to_numpy() for i in (0, 1))
    counts = pool.to_numpy()
    cumulative = counts.cumsum()
    months, first = np.unique(pool_month, return_index=True)
    low = np.concatenate([[0], cumulative])[first]
    weight = np.add.reduceat(counts, first)
    last = np.append(first[1:], len(pool_month)) - 1

    per_day = np.bincount(day_code, minlength=n_days)
    day_month = np.searchsorted(months, month[day_first])
    target = np.minimum(k * per_day, last[day_month] - first[day_month] + 1 - per_day)
    bought = day_code.astype(np.int64) * n_items + item

    chosen = np.empty(0, dtype=np.int64)  # keys day * n_items + item, in draw order
    for _ in range(MAX_ROUNDS):
        short = target - np.bincount(chosen // n_items, minlength=n_days)
        todo = np.flatnonzero(short > 0)
        if not todo.size:
            break
        draw_day = np.repeat(todo, 2 * short[todo] + 4)
        m = day_month[draw_day]
        at = np.searchsorted(cumulative, low[m] + rng.random(draw_day.size) * weight[m], side="right")
        drawn = pool_item[np.minimum(at, last[m])]  # guards the float edge u == month total
        keys = np.concatenate([chosen, draw_day * n_items + drawn])
        keys = keys[~np.isin(keys, bought)]
        keys = keys[np.sort(np.unique(keys, return_index=True)[1])]
        rank = pd.Series(keys // n_items).groupby(keys // n_items).cumcount().to_numpy()
        chosen = keys[rank < target[keys // n_items]]

    neg_day, neg_item = chosen // n_items, chosen % n_items
    rank = pd.Series(neg_day).groupby(neg_day).cumcount().to_numpy() // k
    pos_rank = pd.Series(day_code).groupby(day_code).cumcount().to_numpy()
    channel = pd.Series(pos["sales_channel_id"].to_numpy(), index=pd.MultiIndex.from_arrays([day_code, pos_rank]))
    negatives = pd.DataFrame(
        {
            "user_id": pos["user_id"].to_numpy()[day_first[neg_day]],
            "item_id": items[neg_item],
            "ts": pos["ts"].to_numpy()[day_first[neg_day]],
            "sales_channel_id": channel.reindex(pd.MultiIndex.from_arrays([neg_day, rank])).to_numpy(),
            "label": 0,
            "units": 0,
        }
    )
    return negatives.sort_values(["ts", "user_id", "item_id"], ignore_index=True)
