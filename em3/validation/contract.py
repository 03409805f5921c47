"""The canonical data contract between ingest and the later stages (DESIGN.md §4): tables and columns, the
time split, the manifest, and which relative paths taken from input are acceptable.

``interactions/day=YYYY-MM-DD/part-0.parquet`` (one Hive-style partition per day of ``ts``, read as one table by
``read_interactions``): ``user_id`` (str), ``item_id`` (str), ``ts`` (timestamp, naive UTC: midnight for
day-stamped logs such as H&M's, the event's time for native logs with times), ``label`` (int8 0/1),
``sales_channel_id`` (int16), ``units`` (int16: units bought or clicks; 0 for sampled negatives); one row per
(user, item, ts). No price: it exists only for purchases and would leak the label. No split and no cold flag:
a row's split follows from its ``ts`` and the split dates, and an item's coldness from the training rows
(``SplitRule``), so that the rows of one day never change when other days are added.
``items.parquet``: ``item_id``, ``text`` ("" when the item has no usable text: the modality is masked),
``image_path`` (relative to the data folder, "" when the item has no usable image), then categorical columns as
strings ("" for items known from a photo only); ``images/SHA256SUMS`` holds the sha256 of every image as ingest
verified it (``sha256sum -c`` format, paths relative to the data folder). ``users.parquet``: ``user_id``,
``age`` (float, NaN allowed), then the users file's other columns: ``ingest.numeric_user_columns`` as floats
(NaN when missing), the rest as strings (null when missing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from em3.config import DataConfig, IngestConfig
from em3.errors import DataError

MANIFEST = "manifest.json"
INTERACTIONS_DIR = "interactions"  # day partitions: interactions/day=YYYY-MM-DD/part-0.parquet
PARTITION_FILE = "part-0.parquet"
IMAGE_SUMS = "images/SHA256SUMS"
SPLITS = ("train", "valid", "test")
INTERACTIONS = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("ts", pa.timestamp("us")),
        ("label", pa.int8()),
        ("sales_channel_id", pa.int16()),
        ("units", pa.int16()),
    ]
)
ITEMS = ("item_id", "text", "image_path")
USERS = ("user_id", "age")

VALID_AT, TEST_AT = 0.70, 0.85  # default split points, as fractions of the log's date range


def resolve_split_dates(cfg: IngestConfig, ts: pd.Series) -> IngestConfig:
    """``cfg`` with concrete split dates: those configured, else 70 % and 85 % into the range of ``ts``."""
    if cfg.valid_start and cfg.test_start:
        return cfg
    if ts.isna().all():
        raise DataError("no event dates to place the split at; set ingest.valid_start and ingest.test_start")
    first, last = pd.Timestamp(ts.min()), pd.Timestamp(ts.max())
    at = {"valid_start": VALID_AT, "test_start": TEST_AT}
    dates = {name: getattr(cfg, name) or (first + (last - first) * fraction).date() for name, fraction in at.items()}
    return IngestConfig.model_validate({**cfg.model_dump(), **dates})


def split_codes(ts: np.ndarray, valid_start: date, test_start: date) -> np.ndarray:
    """(N,) int8 index into SPLITS of each time ``ts`` (N,): train before ``valid_start``, valid before
    ``test_start``, test from then on."""
    edges = np.array([valid_start, test_start], dtype="datetime64[ns]")
    return np.searchsorted(edges, np.asarray(ts, dtype="datetime64[ns]"), side="right").astype(np.int8)


def assign_split(ts: pd.Series, valid_start: date, test_start: date) -> pd.Series:
    """The split name of each time of ``ts`` (``split_codes``)."""
    return pd.Series(np.array(SPLITS)[split_codes(ts.to_numpy(), valid_start, test_start)], index=ts.index)


@dataclass(frozen=True)
class SplitRule:
    """Where the splits start and when an item is cold: ingest resolves and records them (``ingest.valid_start``,
    ``ingest.test_start``, ``ingest.cold_max_train`` in the manifest's params); training applies them."""

    valid_start: date
    test_start: date
    cold_max_train: int  # an item is cold with fewer positive training rows
    train_start: date | None = None  # rows before it are in no split (they still feed the histories)

    @classmethod
    def of_tables(cls, data_dir: Path) -> SplitRule:
        params = read_manifest(Path(data_dir)).get("params", {})
        try:
            return cls(
                date.fromisoformat(params["valid_start"]),
                date.fromisoformat(params["test_start"]),
                int(params["cold_max_train"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{Path(data_dir) / MANIFEST}: no usable split dates in params ({exc!r}); re-run `em3 ingest`"
            ) from None

    @classmethod
    def of_config(cls, data: DataConfig) -> SplitRule:
        """The rule training applies to ``data.tables_dir``: ingest's dates or the newest days (``data.split``),
        training limited to the last ``data.train_days`` days before validation. Days are counted in day
        partitions (days with data): a day that never arrived (refused by validate) is skipped, not left empty."""
        rule = cls.of_tables(data.tables_dir)
        days = sorted(interaction_files(data.tables_dir))
        if data.split == "newest_days":
            if len(days) <= data.test_days + data.valid_days:
                raise DataError(
                    f"{data.tables_dir}: {len(days)} day partitions; data.split newest_days needs more than "
                    f"test_days + valid_days ({data.test_days} + {data.valid_days}) to train on"
                )
            rule = replace(rule, valid_start=days[-data.test_days - data.valid_days], test_start=days[-data.test_days])
        if data.train_days:
            before = [day for day in days if day < rule.valid_start]
            rule = replace(rule, train_start=before[-data.train_days] if len(before) >= data.train_days else None)
        return rule

    def codes(self, ts: np.ndarray) -> np.ndarray:
        """(N,) index into SPLITS of each time, -1 before ``train_start`` (no split)."""
        codes = split_codes(ts, self.valid_start, self.test_start)
        if self.train_start is not None:
            codes[np.asarray(ts, dtype="datetime64[ns]") < np.datetime64(self.train_start, "ns")] = -1
        return codes

    def cold(self, item: np.ndarray, label: np.ndarray, split: np.ndarray, n_items: int) -> np.ndarray:
        """(N,) True where row's item (indices < ``n_items``) had fewer than ``cold_max_train`` positive train rows."""
        train_positives = np.bincount(item[(split == 0) & (label > 0)], minlength=n_items)
        return train_positives[item] < self.cold_max_train


def partition_path(data_dir: Path, day: date) -> Path:
    """The file of the interactions of ``day``."""
    return Path(data_dir) / INTERACTIONS_DIR / f"day={day.isoformat()}" / PARTITION_FILE


def interaction_files(data_dir: Path) -> dict[date, Path]:
    """Day -> partition file of the interactions table, in day order; a DataError when there is none."""
    folder = Path(data_dir) / INTERACTIONS_DIR
    files = {}
    for path in folder.glob(f"day=*/{PARTITION_FILE}"):
        try:
            files[date.fromisoformat(path.parent.name.removeprefix("day="))] = path
        except ValueError:
            raise DataError(f"{path.parent}: not a day partition; expected {folder}/day=YYYY-MM-DD") from None
    if not files:
        raise DataError(f"{folder}: no day partitions (day=YYYY-MM-DD/{PARTITION_FILE}); run `em3 ingest` first")
    return dict(sorted(files.items()))


def read_interactions(
    data_dir: Path, columns: list[str] | None = None, read_dictionary: list[str] | None = None
) -> pa.Table:
    """Every day partition of the interactions table, in day order, as one table: the files ``interaction_files``
    lists and validate checks, never another file that lies in the folder."""
    files = [str(path) for path in interaction_files(data_dir).values()]
    return pq.read_table(files, columns=columns, read_dictionary=read_dictionary, partitioning=None)


def interactions_columns(data_dir: Path) -> list[str]:
    """The columns of the interactions table (its first partition's)."""
    return pq.read_schema(next(iter(interaction_files(data_dir).values()))).names


def read_image_sums(data_dir: Path) -> dict[str, str]:
    """Image path (relative to ``data_dir``) -> sha256 recorded by ingest; empty when there is no record."""
    path = data_dir / IMAGE_SUMS
    lines = path.read_text().splitlines() if path.is_file() else []
    return {name: sha for sha, _, name in (line.partition("  ") for line in lines)}


def read_manifest(data_dir: Path) -> dict[str, Any]:
    path = data_dir / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: not found; expected the output of `em3 ingest`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def data_hash(tables_dir: str | Path) -> str:
    """sha256 of what ingest read and how (raw file hashes, image hashes, parameters), from its manifest."""
    manifest = read_manifest(Path(tables_dir))
    identity = {key: manifest[key] for key in ("files", "images", "params")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
