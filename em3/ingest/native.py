"""The native layout: an impression log (``user_id, item_id, ts, label`` and optionally ``sales_channel_id``
and ``units``; CSV or Parquet) and an items file (``item_id, text, image_path`` plus any categorical
columns).

``ts`` is an ISO 8601 date or time (times are taken in UTC and truncated to the day); ``image_path`` is
relative to the source root, "" for an item without image. Labels are given, so no negatives are sampled.
Without ``units`` an impression counts ``label`` units; without ``sales_channel_id`` the channel is 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from em3.config import IngestConfig
from em3.ingest.raw import RawData, fetch_table
from em3.ingest.sources import Source
from em3.validation.contract import check_relative
from em3.validation.suites import check_impressions, check_native_items

LOG = ("user_id", "item_id", "ts", "label")
LOG_OPTIONAL = ("sales_channel_id", "units")
ITEMS = ("item_id", "text", "image_path")


def read_native(source: Source, cfg: IngestConfig, scratch: Path) -> RawData:
    log_file = check_relative(cfg.native_log, "ingest.native_log")
    items_file = check_relative(cfg.native_items, "ingest.native_items")
    items_raw, items_sha = fetch_table(source, items_file, scratch, ITEMS, extra=True)
    log_raw, log_sha = fetch_table(source, log_file, scratch, LOG, LOG_OPTIONAL)

    items = check_native_items(items_raw, cfg)
    log = check_impressions(log_raw, cfg, items.kept["item_id"])

    shown = log.kept
    label = shown["label"].astype(int)
    events = pd.DataFrame(
        {
            "user_id": shown["user_id"],
            "item_id": shown["item_id"],
            "ts": shown["ts"],
            "label": label,
            "units": shown["units"].astype(int) if "units" in shown else label,
            "sales_channel_id": shown["sales_channel_id"].astype(int) if "sales_channel_id" in shown else 0,
        }
    )
    users = pd.DataFrame({"user_id": np.sort(events["user_id"].unique()), "age": np.nan})
    catalog = items.kept[list(items_raw.columns)].rename(columns={"image_path": "image_key"})
    files = {items_file: items_sha, log_file: log_sha}
    return RawData(events, catalog, users, [items, log], files, "", purchases=False)
