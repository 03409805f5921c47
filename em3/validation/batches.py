"""The canonical interactions table checked in row batches, so that validate's memory is bounded by the batch and
not by the log (DESIGN §7): each batch runs the interactions suite (em3.validation.suites.check_interactions),
failing rows go to the quarantine file as they come, and the positives per item are counted on the way.

The one rule that spans batches, one row per (user_id, item_id, ts), is settled before them: every row's key is
hashed (8 bytes a row), and only the rows whose hash repeats are read again and compared exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from em3.config import IngestConfig
from em3.validation.engine import ROWS, CheckedBatches
from em3.validation.modalities import positive_rows
from em3.validation.suites import INTERACTION_KEY, check_interactions

BATCH_ROWS = 1 << 20


def row_batches(
    files: Sequence[Path], columns: list[str] | None = None, batch_rows: int | None = None, start: int = 0
) -> Iterator[pd.DataFrame]:
    """The table in ``files`` (read one after the other) as pandas frames of at most ``batch_rows`` rows (default
    ``BATCH_ROWS``) that never span two files, indexed by row number from ``start``."""
    batch_rows = batch_rows or BATCH_ROWS
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
            frame = batch.to_pandas()
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield frame


def repeated_rows(files: Sequence[Path], batch_rows: int | None = None) -> np.ndarray:
    """Row numbers of the rows whose (user_id, item_id, ts) an earlier row of the table has, in row order."""
    columns = list(INTERACTION_KEY)
    hashes = [
        pd.util.hash_pandas_object(frame, index=False).to_numpy() for frame in row_batches(files, columns, batch_rows)
    ]
    hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    order = np.argsort(hashes, kind="stable")
    same = hashes[order][1:] == hashes[order][:-1]
    candidates = np.unique(np.concatenate([order[1:][same], order[:-1][same]]))  # rows whose hash repeats
    if not len(candidates):
        return candidates
    keys = pd.concat(frame[frame.index.isin(candidates)] for frame in row_batches(files, columns, batch_rows))
    return keys.index[keys.duplicated(columns)].to_numpy()


def check_interactions_files(
    files: Mapping[date, Path],
    cfg: IngestConfig,
    user_ids: Iterable[str],
    item_ids: Iterable[str],
    quarantine_path: Path,
    batch_rows: int | None = None,
) -> tuple[dict, pd.Series]:
    """The interactions suite over the day partitions ``files`` (day -> file), batch by batch, each row also held
    to its partition's day; the summary (em3.validation.engine) and the positive rows per item id. Failing rows are
    written to ``quarantine_path`` (only when there are any). One row per (user_id, item_id, ts) holds across days."""
    users, items = pd.Index(pd.unique(np.asarray(user_ids))), pd.Index(pd.unique(np.asarray(item_ids)))
    repeated = repeated_rows(list(files.values()), batch_rows)
    checked = CheckedBatches("interactions", ROWS, quarantine_path)
    positives = pd.Series(dtype=np.int64)
    start = 0  # row numbers in the whole table, as repeated_rows counts them
    for day, path in files.items():
        for frame in row_batches([path], batch_rows=batch_rows, start=start):
            start += len(frame)
            check = check_interactions(frame, cfg, users, items, repeated=frame.index.isin(repeated), day=day)
            checked.add(check)
            positives = positives.add(positive_rows(frame), fill_value=0)
    return checked.close(), positives.astype(np.int64)
