"""Read one raw table (CSV or Parquet) with every value as a string, or fail with a DataError that says why.

Values stay strings (empty string for a missing value) so that nothing is lost or guessed before the checks:
ids keep their leading zeros, and a bad value becomes a quarantined row rather than a crash. Structural
problems are errors naming the file: empty file, no data rows, missing or unexpected columns, wrong delimiter,
a row with the wrong number of fields, a quoted field still open at the end of the file (a truncated file; the
line it opens on is named), bytes that are not UTF-8. CSV is read as pyarrow, pandas and Python's csv module read
it: a quote opens a quoted field only at the start of a field, so ``Jeans with a 32" leg`` is an ordinary value.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import csv as pacsv

from em3.errors import DataError
from em3.sources import Source
from em3.validation.engine import Checked

CHUNK = 1 << 20
SHOWN_ROWS = 3
BLOCK_BYTES = 1 << 26  # CSV parsing block: a row must fit in one (pyarrow's default, 1 MB, refuses a 2 MB text)


def fetch_table(
    source: Source,
    rel: str,
    scratch: Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    extra: bool = False,
) -> tuple[pd.DataFrame, str]:
    """``read_table`` on file ``rel`` of ``source`` (downloaded under ``scratch`` when remote)."""
    return read_table(fetched(source, rel, scratch, required), shown_name(source, rel), required, optional, extra)


def fetched(source: Source, rel: str, scratch: Path, required: Sequence[str]) -> Path:
    """File ``rel`` of ``source`` on local disk (downloaded under ``scratch`` when remote), or a DataError."""
    path = source.local(rel, scratch)
    if path is None:
        raise DataError(f"{shown_name(source, rel)}: file not found; expected a table with columns {list(required)}")
    return path


def shown_name(source: Source, rel: str) -> str:
    """File ``rel`` of ``source`` as errors name it."""
    return f"{source.uri.rstrip('/')}/{rel}"


@dataclass
class RawData:
    """A source's clean raw rows in common form, with its checks and file hashes."""

    events: pd.DataFrame  # user_id, item_id, ts (day or time), label, units, sales_channel_id; may repeat
    items: pd.DataFrame  # item_id, text ("" if masked), image_key ("" if none), then categoricals as strings
    users: pd.DataFrame  # user_id, age (float, NaN allowed), then other attributes (em3.validation.contract)
    checks: list[Checked]  # raw tables, in the order they were checked
    files: dict[str, str]  # source-relative path -> sha256
    image_root: str  # folder of the image keys in the source
    purchases: bool  # events are purchases only: negatives must be sampled
    log_file: str  # the source file of the events (named when none is left)
    catalogue: dict  # how the items were found (em3.ingest.items.build_items)
    repairs: dict = field(default_factory=dict)  # values taken as meant, counted (e.g. ids_padded), for the manifest


def read_table(
    path: Path, name: str, required: Sequence[str], optional: Sequence[str] = (), extra: bool = False
) -> tuple[pd.DataFrame, str]:
    """The table at ``path`` (shown as ``name`` in errors) as strings, and the file's sha256.

    ``required`` columns must be present, ``optional`` ones may be; others are errors unless ``extra``.
    """
    (frame,), digest = read_table_batches(path, name, required, optional, extra)
    return frame, digest


def read_table_batches(
    path: Path,
    name: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    extra: bool = False,
    batch_rows: int | None = None,
) -> tuple[Iterator[pd.DataFrame], str]:
    """``read_table`` as consecutive frames of at most ``batch_rows`` rows (None: one frame), each indexed by its
    rows' places in the file; every error is raised before the first frame. The file is held as Arrow strings
    (compact); the Python string objects of a frame exist one batch at a time."""
    if not path.stat().st_size:
        raise DataError(f"{name}: empty file (0 bytes); expected a header with columns {list(required)}")
    digest, has_quotes = _scan(path)
    if path.suffix == ".csv":
        header = _header(path, name)
        _check_columns(header, name, required, optional, extra)
        table = _read_csv(path, name, header)
        if has_quotes:
            _check_last_record_closed(path, name)
    elif path.suffix == ".parquet":
        table = _read_parquet(path, name)
        _check_columns(table.column_names, name, required, optional, extra)
    else:
        raise DataError(f"{name}: unsupported file type {path.suffix!r}; expected .csv or .parquet")
    if not table.num_rows:
        raise DataError(f"{name}: no data rows; expected at least one row under the header")
    return _frames(table, path.suffix == ".csv", has_quotes, batch_rows or table.num_rows), digest


def _frames(table: pa.Table, csv_file: bool, has_quotes: bool, batch_rows: int) -> Iterator[pd.DataFrame]:
    """``table`` as pandas frames of ``batch_rows`` rows, indexed by where each row is in its file: the line it
    starts on in a CSV (the header is line 1; a quoted value with line breaks makes its row span several lines),
    the row number (from 1) in a Parquet file."""
    line = 2  # the CSV line of the next row
    for start in range(0, table.num_rows, batch_rows):
        frame = table.slice(start, batch_rows).to_pandas()
        if not csv_file:
            frame.index = pd.RangeIndex(start + 1, start + len(frame) + 1, name="source_row")
            yield frame
            continue
        breaks = np.zeros(len(frame), dtype=np.int64)
        if has_quotes:  # only a quoted value can hold a line break
            breaks = sum(frame[column].str.count("\n").to_numpy() for column in frame.columns)  # (rows,)
        lines = line + np.arange(len(frame)) + np.concatenate([[0], np.cumsum(breaks)[:-1]]).astype(np.int64)
        line = int(lines[-1] + breaks[-1] + 1)
        frame.index = pd.Index(lines, name="source_line")
        yield frame


def _scan(path: Path) -> tuple[str, bool]:
    """sha256 of the file, and whether it holds a double quote (without one no quoted field can be open)."""
    sha, quotes = hashlib.sha256(), False
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            sha.update(chunk)
            quotes = quotes or b'"' in chunk
    return sha.hexdigest(), quotes


def _check_last_record_closed(path: Path, name: str) -> None:
    """A DataError naming the line when the file ends inside a quoted field (cut short): the parsers accept such
    a file silently, the last value running to the end. A field left open swallows the rest of the file, so it
    is in the last record: split the records leniently, then read the last one strictly."""
    lines: list[str] = []
    first_line = last_first_line = 1

    def tracked(file: Iterable[str]) -> Iterator[str]:
        for line in file:
            lines.append(line)
            yield line

    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, BLOCK_BYTES))
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as file:
            reader = csv.reader(tracked(file))
            last: list[str] = []
            for _ in reader:
                last, last_first_line = lines[:], first_line
                first_line += len(lines)
                lines.clear()
            try:
                list(csv.reader(last, strict=True))
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    end = last_first_line + len(last) - 1
                    raise DataError(
                        f"{name}: the row starting at line {last_first_line} has a quoted field that is never "
                        f"closed (the file ends at line {end}): the file looks truncated"
                    ) from None
    finally:
        csv.field_size_limit(limit)


def _header(path: Path, name: str) -> list[str]:
    with path.open("rb") as file:
        line = file.readline()
    if line.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in line:
        raise DataError(f"{name}: UTF-16 text (as some spreadsheets save CSV); expected UTF-8: save it as CSV UTF-8")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: line 1 (header) is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return next(csv.reader([text]))


def _read_csv(path: Path, name: str, header: list[str]) -> pa.Table:
    bad_rows: list[str] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(f"row {row.number} has {row.actual_columns} fields: {row.text[:120]!r}")
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # row numbers in errors need a sequential read
            read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={column: pa.string() for column in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc):
            raise DataError(f"{name}: {_first_non_utf8(path)} is not UTF-8 text; expected a UTF-8 CSV") from None
        if "straddling" in str(exc):
            raise DataError(f"{name}: a row is longer than {BLOCK_BYTES >> 20} MB; expected shorter rows") from None
        raise DataError(f"{name}: not a readable CSV ({exc})") from None
    if bad_rows:
        raise DataError(
            f"{name}: {len(bad_rows)} row(s) do not have the {len(header)} fields of the header (rows count "
            f"the header as row 1; a short last row means a truncated file): " + "; ".join(bad_rows[:SHOWN_ROWS])
        )
    return table


def _first_non_utf8(path: Path) -> str:
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number} (byte {exc.start} of the line: {line[exc.start : exc.start + 4]!r})"
    return "a value"


def _read_parquet(path: Path, name: str) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: not a readable Parquet file ({exc})") from None
    columns = [pc.fill_null(pc.cast(column, pa.string()), "") for column in table.columns]
    return pa.table(columns, names=table.column_names)


def _check_columns(found: list[str], name: str, required: Sequence[str], optional: Sequence[str], extra: bool) -> None:
    expected = f"expected columns {list(required)}" + (f" (optional: {list(optional)})" if optional else "")
    if len(found) == 1 and any(sep in found[0] for sep in ";\t|"):
        raise DataError(f"{name}: the header is one column {found[0]!r}: wrong delimiter? {expected}, comma-separated")
    if duplicated := sorted({column for column in found if found.count(column) > 1}):
        raise DataError(f"{name}: duplicate column(s) {duplicated}; {expected}")
    if missing := [column for column in required if column not in found]:
        raise DataError(f"{name}: missing column(s) {missing}; {expected}")
    if not extra and (unexpected := [c for c in found if c not in (*required, *optional)]):
        raise DataError(f"{name}: unexpected column(s) {unexpected}; {expected}")
