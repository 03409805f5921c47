"""Building the canonical interactions table (columns: em3.validation.contract): one row per (user, item,
ts) (per day for day-stamped purchase logs), sampled negatives for purchase logs.
"""

from __future__ import annotations

import pandas as pd

from em3.config import IngestConfig
from em3.ingest.negatives import sample_negatives
from em3.validation.contract import INTERACTIONS

KEY = ["ts", "user_id", "item_id"]


def collapse(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item, ts): label = max, units = sum, the first row's sales channel."""
    return events.groupby(KEY, sort=True, as_index=False).agg(
        label=("label", "max"), units=("units", "sum"), sales_channel_id=("sales_channel_id", "first")
    )


def build_interactions(events: pd.DataFrame, purchases: bool, cfg: IngestConfig) -> tuple[pd.DataFrame, int]:
    """The canonical table from clean events, and how many negatives could not be drawn (months too small)."""
    rows = collapse(events)  # sorted by KEY
    missing = 0
    if purchases:
        negatives = sample_negatives(rows, cfg.negatives_per_positive, cfg.seed)
        missing = cfg.negatives_per_positive * len(rows) - len(negatives)
        rows = pd.concat([rows, negatives], ignore_index=True).sort_values(KEY, ignore_index=True)
    return rows[INTERACTIONS.names], missing
