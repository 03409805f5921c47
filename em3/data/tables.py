"""Training data from the canonical tables written by ``em3 ingest`` and the token store of ``em3 features``.

Context features: the interactions' ``sales_channel_id`` and the users table's attributes (``data.user_features``;
default every column but ``user_id``). Categorical ones (strings) become embedding indices from the training rows'
vocabulary, index 0 being the unknown bucket (missing values, values first seen after train, values on fewer than
``data.category_min_rows`` training rows). Numeric ones are standardised with the training rows' mean and standard
deviation; a missing value becomes 0 with a missing flag of 1 beside it. A row's split and its item's coldness
follow from its time and the split dates ingest recorded (em3.validation.contract.SplitRule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from em3.data.dataset import RankingData, Split
from em3.data.history import history_chunks, history_time
from em3.data.mapped import MappedRows, temporary_rows
from em3.data.token_store import TokenStore
from em3.errors import DataError
from em3.validation.contract import (
    INTERACTIONS_DIR,
    SPLITS,
    SplitRule,
    interactions_columns,
    read_interactions,
)

CONTEXT_COLUMNS = ("sales_channel_id",)
READ_COLUMNS = ("user_id", "item_id", "ts", "label")  # and the context columns
USER_PREFIX = "user."  # context names of user attributes in train.json


def categorical_codes(values: pd.Series, train: np.ndarray, min_rows: int) -> tuple[np.ndarray, list[str]]:
    """Values → indices 1..n of the values on at least ``min_rows`` training rows (sorted as strings), 0 for
    anything else (missing, unseen in train, rarer); and those values (index i + 1: the cardinality is their
    number + 1). Works on the distinct values, so a column of ten million rows never becomes ten million strings."""
    codes, uniques = pd.factorize(values)  # -1 where missing
    names = pd.Index(uniques).astype(str)  # values compared as strings: 1 and "1" are one category
    counts = pd.Series(np.bincount(codes[train & (codes >= 0)], minlength=len(uniques))).groupby(names).sum()
    vocabulary = pd.Index(sorted(counts.index[counts >= min_rows]))
    lookup = np.append(vocabulary.get_indexer(names) + 1, 0)  # -1 (not in the vocabulary) -> 0; index -1: missing
    return lookup[codes].astype(np.int64), vocabulary.tolist()


def numeric_columns(values: pd.Series, train: np.ndarray) -> np.ndarray:
    """(N, 2): the value standardised by the training rows' mean and standard deviation (0 where missing or not
    finite) and a missing flag (1.0 where so)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(x)
    seen = x[train & finite]
    mean = seen.mean() if len(seen) else 0.0
    std = seen.std() if len(seen) > 1 and seen.std() > 0 else 1.0
    return np.stack([np.where(finite, (x - mean) / std, 0.0), (~finite).astype(np.float64)], axis=1)


def is_number(values: pd.Series) -> bool:
    """Whether a user attribute is numeric (standardised) rather than categorical (booleans are categories)."""
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def user_attributes(
    tables_dir: Path, user_ids: np.ndarray, user_rows: np.ndarray, wanted: tuple[str, ...] | None
) -> dict[str, pd.Series]:
    """The users table's attribute columns for each row, whose user is ``user_ids[user_rows]`` (NaN for users without
    a row): numbers as numbers, anything else as a categorical, so that no per-row strings are made."""
    path = tables_dir / "users.parquet"
    if not path.is_file():
        if wanted:
            raise DataError(f"{path} not found, but data.user_features names {list(wanted)}; run `em3 ingest`")
        return {}
    users = pd.read_parquet(path)
    available = [column for column in users.columns if column != "user_id"]
    if wanted is None:
        wanted = tuple(available)
    if unknown := [column for column in wanted if column not in available]:
        raise DataError(f"{path}: data.user_features names column(s) {unknown}; the table has {available}")
    users = users.drop_duplicates("user_id").set_index("user_id")[list(wanted)].reindex(user_ids)
    columns = {}
    for column in wanted:
        values = users[column]
        if is_number(values):
            columns[column] = pd.Series(values.to_numpy()[user_rows])
        else:
            codes, uniques = pd.factorize(values)
            columns[column] = pd.Series(pd.Categorical.from_codes(codes[user_rows], uniques))
    return columns


def context_features(
    channels: dict[str, pd.Series], users: dict[str, pd.Series], train: np.ndarray, min_rows: int
) -> tuple[np.ndarray, tuple[int, ...], np.ndarray, dict[str, list[str]], list[list[str]]]:
    """Categorical codes (N, F), their cardinalities, numeric inputs (N, 2G), the names of what is used and each
    categorical field's vocabulary (the value of code i + 1), from the
    interactions' context ``channels`` (categorical whatever their type) and the rows' user attributes. A
    categorical column with a single value on the training rows (missing counts as a value: "1.0 or nothing" is
    information) tells the model nothing and is left out (e.g. ``sales_channel_id`` of a log that has no such
    column: ingest writes 0 everywhere)."""
    categorical, numeric = list(channels.items()), []
    for column, values in users.items():
        (numeric if is_number(values) else categorical).append((USER_PREFIX + column, values))
    categorical = [(name, values) for name, values in categorical if values[train].nunique(dropna=False) > 1]
    encoded = [categorical_codes(values, train, min_rows) for _, values in categorical]
    codes = np.stack([c for c, _ in encoded], axis=1) if encoded else np.zeros((len(train), 0), np.int64)
    parts = [numeric_columns(values, train) for _, values in numeric]
    dense = np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((len(train), 0), np.float32)
    names = {"context": [name for name, _ in categorical], "numeric": [name for name, _ in numeric]}
    return codes, tuple(len(vocabulary) + 1 for _, vocabulary in encoded), dense, names, [v for _, v in encoded]


def dictionary_codes(table: pa.Table, name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Column ``name``, read dictionary-encoded → (each row's index into the values (N,), the distinct values): ten
    million ids cost their indices, not ten million strings."""
    column = table.column(name)
    if column.null_count:
        raise DataError(f"{path}: column {name!r} has {column.null_count} empty values; run `em3 validate` first")
    column = column.unify_dictionaries().combine_chunks()
    indices = column.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return indices, column.dictionary.to_numpy(zero_copy_only=False)


def sorted_codes(indices: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows' indices into ``values`` → codes 0..n-1 of the values the rows use, in sorted order, and those values
    (``pandas.factorize(..., sort=True)`` of the rows, without making them)."""
    used = np.flatnonzero(np.bincount(indices, minlength=len(values)))
    order = used[np.argsort(values[used], kind="stable")]
    code = np.full(len(values), -1, np.int64)
    code[order] = np.arange(len(order))
    return code[indices], values[order]


def load_tables(
    tables_dir: str | Path,
    store_dir: str | Path,
    max_history: int,
    history: str = "auto",
    user_features: tuple[str, ...] | None = None,
    category_min_rows: int = 5,
    rule: SplitRule | None = None,
) -> RankingData:
    """The splits of ``tables_dir`` with the content of ``store_dir``; the other arguments are ``data.<name>``, and
    ``rule`` the split (default: ingest's dates; rows it places in no split only feed the histories).
    Ids and split names are read dictionary-encoded and every per-row array is a number, so that memory is about
    60 bytes a row (plus the store's per-item tables) whatever the log's ids; the histories go to a file."""
    tables_dir = Path(tables_dir)
    path = tables_dir / INTERACTIONS_DIR
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: run `em3 ingest` (and `em3 validate`) first")
    present = interactions_columns(tables_dir)
    columns = [c for c in (*READ_COLUMNS, *CONTEXT_COLUMNS) if c in present]
    table = read_interactions(tables_dir, columns, read_dictionary=["user_id", "item_id"])
    store = TokenStore.load(store_dir)
    rule = rule or SplitRule.of_tables(tables_dir)

    item_index, item_ids = dictionary_codes(table, "item_id", path)
    rows = store.index()
    item_rows = np.array([rows.get(item_id, -1) for item_id in item_ids], np.int64)
    rows_per_id = np.bincount(item_index, minlength=len(item_ids))
    unknown = (item_rows < 0) & (rows_per_id > 0)
    if unknown.any():
        examples = ", ".join(map(str, item_ids[unknown][:3]))
        raise ValueError(
            f"{path}: {int(rows_per_id[unknown].sum())} rows name items missing from the "
            f"token store {store_dir} (e.g. {examples}); re-run `em3 features` on the current items table"
        )
    item = item_rows[item_index]
    user_codes, user_ids = sorted_codes(*dictionary_codes(table, "user_id", path))
    user, n_users = user_codes + 1, len(user_ids) + 1
    ts = table.column("ts").to_pandas()
    split = rule.codes(ts.to_numpy())  # (N,) 0 train, 1 valid, 2 test, -1 before the training window
    parts = [np.flatnonzero(split == code) for code in range(len(SPLITS))]  # rows of each split, in log order
    train = split == 0
    label = table.column("label").to_numpy().astype(np.int64)
    cold = rule.cold(item, label, split, store.n_rows)
    channels = {c: pd.Series(table.column(c).to_numpy()) for c in CONTEXT_COLUMNS if c in present}
    time, history_rule = history_time(ts, history)
    del table, item_index, ts
    users = user_attributes(tables_dir, user_ids, user_codes, user_features)
    context, cardinalities, numeric, names, vocabularies = context_features(channels, users, train, category_min_rows)
    del channels, users
    histories = mapped_histories(user, time, item, label, max_history, np.concatenate(parts))  # split after split
    starts = np.cumsum([0, *map(len, parts)])

    def take(rows: np.ndarray, start: int) -> Split:
        return Split(
            user=torch.from_numpy(user[rows]),
            item=torch.from_numpy(item[rows]),
            context=torch.from_numpy(context[rows]),
            history=histories[start : start + len(rows)],
            label=torch.from_numpy(label[rows].astype(np.float32)),
            cold=torch.from_numpy(cold[rows]),
            numeric=torch.from_numpy(numeric[rows]),
        )

    return RankingData(
        **{name: take(rows, start) for name, rows, start in zip(SPLITS, parts, starts[:-1], strict=True)},
        n_users=n_users,
        context_cardinalities=cardinalities,
        store=store,
        item_train_interactions=np.bincount(item[train & (label == 1)], minlength=store.n_rows),
        inputs={**names, "history": history_rule},
        user_ids=user_ids,
        context_vocabularies=vocabularies,
    )


def mapped_histories(
    user: np.ndarray, time: np.ndarray, item: np.ndarray, label: np.ndarray, length: int, rows: np.ndarray
) -> MappedRows:
    """``earlier_histories`` of ``rows`` (row numbers, in the order wanted) as int64 rows of a temporary int32 file
    (em3.data.mapped.temporary_rows): the (N, length) histories are the largest training array (2 GB at 10 M
    impressions and length 50) and stay out of memory."""
    chunks = history_chunks(user, time, item, label, length, rows)
    return temporary_rows((len(rows), length), np.int32, chunks, prefix="em3-histories-", read_as=np.int64)
