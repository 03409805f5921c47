"""The native layout (README: "The native impression format"):

- the impression log ``ingest.native_log``: ``user_id, item_id, ts, label`` and optionally ``sales_channel_id``
  and ``units``; ``ts`` an ISO 8601 date or time (times are taken in UTC and kept: one row per (user, item,
  ts), and histories then hold strictly earlier events, ``data.history``). Labels are given, so no negatives are
  sampled. Without ``units`` an impression counts ``label`` units; without
  ``sales_channel_id`` the channel is 0.
- the items file ``ingest.native_items``: ``item_id, text``, optionally ``image_path`` (relative to the source
  root; "" or no column: the photo ``images/<item_id>.<image suffix>`` when the source has one), plus any
  categorical columns. Photos ``images/<item_id>.<suffix>`` without a row become image-only items.
- the users file ``ingest.native_users`` (read when present): ``user_id``, optionally ``age``, plus any
  attribute columns (em3.ingest.users). Users of the log without a row keep their impressions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from em3.config import IngestConfig
from em3.ingest.items import IMAGES_DIR, build_items, native_photos
from em3.ingest.raw import RawData, fetch_table, fetched, read_table, read_table_batches, shown_name
from em3.ingest.users import user_table
from em3.sources import Source, check_relative
from em3.validation.engine import ROWS, Checked, CheckedBatches
from em3.validation.suites import check_impressions, check_native_items, check_native_users

LOG = ("user_id", "item_id", "ts", "label")
LOG_OPTIONAL = ("sales_channel_id", "units")
ITEMS = ("item_id", "text")
ITEMS_OPTIONAL = ("image_path",)
USERS = ("user_id",)
LOG_BATCH = 1 << 20  # log rows checked at once


def read_native(source: Source, cfg: IngestConfig, scratch: Path) -> RawData:
    log_file = check_relative(cfg.native_log, "ingest.native_log")
    items_file = check_relative(cfg.native_items, "ingest.native_items")
    users_file = check_relative(cfg.native_users, "ingest.native_users")
    items_raw, items_sha = fetch_table(source, items_file, scratch, ITEMS, ITEMS_OPTIONAL, extra=True)
    log_batches, log_sha = read_table_batches(
        fetched(source, log_file, scratch, LOG), shown_name(source, log_file), LOG, LOG_OPTIONAL, batch_rows=LOG_BATCH
    )
    users_path = source.local(users_file, scratch)
    photos = native_photos(source.list_files(IMAGES_DIR))

    item_rows = check_native_items(items_raw, cfg)
    kept = item_rows.kept[list(items_raw.columns)]
    rows = kept.rename(columns={"image_path": "image_key"})
    if "image_key" not in rows:
        rows.insert(2, "image_key", "")
    items, texts, catalogue = build_items(rows, photos, cfg)
    log, events = _checked_log(log_batches, cfg, pd.Index(items["item_id"]), scratch)
    checks = [item_rows, texts, log]
    files = {items_file: items_sha, log_file: log_sha}

    user_rows = pd.DataFrame({"user_id": pd.Series(dtype=object)})
    if users_path is not None:
        users_raw, files[users_file] = read_table(users_path, shown_name(source, users_file), USERS, extra=True)
        user_check = check_native_users(users_raw, cfg)
        checks.append(user_check)
        user_rows = user_check.kept[list(users_raw.columns)]
    users = user_table(user_rows, cfg, events["user_id"])
    return RawData(events, items, users, checks, files, "", False, log_file, catalogue)


def _checked_log(
    batches: Iterable[pd.DataFrame], cfg: IngestConfig, item_ids: pd.Index, scratch: Path
) -> tuple[Checked, pd.DataFrame]:
    """The impression log checked batch by batch (a log of millions of rows is never held as Python strings): the
    check of the whole log (its kept rows left out) and the kept rows as typed events."""
    checked = CheckedBatches("impressions", ROWS, scratch / "impressions-quarantine.parquet")
    parts = []
    for frame in batches:
        check = check_impressions(frame, cfg, item_ids)
        checked.add(check)
        parts.append(_events(check.kept))
    summary = checked.close()
    path = checked.quarantine_path
    quarantine = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=["reason"])
    return Checked(parts[0].iloc[:0], quarantine, summary), pd.concat(parts, ignore_index=True)


def _events(shown: pd.DataFrame) -> pd.DataFrame:
    """Checked log rows in the common form of em3.ingest.raw.RawData.events, in the narrowest types that hold them
    (the canonical table's, em3.validation.contract)."""
    label = shown["label"].astype(np.int8)
    channel = shown["sales_channel_id"].astype(np.int16) if "sales_channel_id" in shown else np.int16(0)
    return pd.DataFrame(
        {
            "user_id": shown["user_id"],
            "item_id": shown["item_id"],
            "ts": shown["ts"],
            "label": label,
            "units": shown["units"].astype(np.int32) if "units" in shown else label.astype(np.int32),
            "sales_channel_id": channel,
        }
    )
