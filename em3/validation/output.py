"""Parquet output of the data stages (written inside ``em3.atomic.staged_dir``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from em3.validation.contract import INTERACTIONS, partition_path


def write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def write_interactions(frame: pd.DataFrame, data_dir: Path) -> dict[str, dict[str, int]]:
    """The canonical interactions ``frame`` (sorted by time) as one partition file per day of ``ts`` under
    ``data_dir`` (em3.validation.contract.partition_path); returns rows and positives per day (ISO dates)."""
    days = pd.to_datetime(frame["ts"]).dt.normalize()
    written = {}
    for day, rows in frame.groupby(days.to_numpy(), sort=True):
        day = pd.Timestamp(day).date()
        write_parquet(rows, partition_path(data_dir, day), INTERACTIONS)
        written[day.isoformat()] = {"rows": len(rows), "positives": int((rows["label"] > 0).sum())}
    return written
