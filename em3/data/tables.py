"""Training data from the canonical tables written by ``em3 ingest`` and the token store of ``em3 features``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from em3.data.dataset import RankingData, Split
from em3.data.history import earlier_day_histories
from em3.data.token_store import TokenStore

SPLITS = ("train", "valid", "test")
CONTEXT_COLUMNS = ("sales_channel_id",)


def _categorical(values: pd.Series) -> tuple[np.ndarray, int]:
    """Values → indices 1..n (0 stays free for unknown), and the cardinality including 0."""
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64) + 1, len(uniques) + 1


def load_tables(tables_dir: str | Path, store_dir: str | Path, max_history: int) -> RankingData:
    tables_dir = Path(tables_dir)
    path = tables_dir / "interactions.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `em3 ingest` (and `em3 validate`) first")
    frame = pd.read_parquet(path)
    store = TokenStore.load(store_dir)
    rows = store.index()
    unknown = ~frame["item_id"].isin(rows)
    if unknown.any():
        examples = ", ".join(frame.loc[unknown, "item_id"].astype(str).unique()[:3])
        raise ValueError(
            f"{path}: {int(unknown.sum())} rows name items missing from the token store {store_dir} "
            f"(e.g. {examples}); re-run `em3 features` on the current items table"
        )

    item = frame["item_id"].map(rows).to_numpy(np.int64)
    user, n_users = _categorical(frame["user_id"])
    day = pd.to_datetime(frame["ts"]).to_numpy("datetime64[D]").astype(np.int64)
    label = frame["label"].to_numpy(np.int64)
    context_columns = [c for c in CONTEXT_COLUMNS if c in frame]
    encoded = [_categorical(frame[c]) for c in context_columns]
    context = np.stack([codes for codes, _ in encoded], axis=1) if encoded else np.zeros((len(frame), 0), np.int64)
    history = earlier_day_histories(user, day, item, label, max_history)
    split = frame["split"].to_numpy()
    cold = frame["cold"].to_numpy(bool)

    def take(name: str) -> Split:
        rows = split == name
        return Split(
            user=torch.from_numpy(user[rows]),
            item=torch.from_numpy(item[rows]),
            context=torch.from_numpy(context[rows]),
            history=torch.from_numpy(history[rows]),
            label=torch.from_numpy(label[rows].astype(np.float32)),
            cold=torch.from_numpy(cold[rows]),
        )

    train_positives = (split == "train") & (label == 1)
    return RankingData(
        train=take("train"),
        valid=take("valid"),
        test=take("test"),
        n_users=n_users,
        context_cardinalities=tuple(cardinality for _, cardinality in encoded),
        store=store,
        item_train_interactions=np.bincount(item[train_positives], minlength=store.n_rows),
    )
