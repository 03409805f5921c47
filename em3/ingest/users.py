"""The users table from a users file (H&M ``customers.csv``, the native users file): ``user_id``, ``age`` and
the ``ingest.numeric_user_columns`` as floats (NaN when empty or absent), every other column as strings (None
when empty). Later stages use these attributes as context features (em3.data.tables: strings categorical,
numbers numeric)."""

from __future__ import annotations

import pandas as pd

from em3.config import IngestConfig


def user_table(rows: pd.DataFrame, cfg: IngestConfig, log_users: pd.Series | None = None) -> pd.DataFrame:
    """``rows``: clean users-file rows as strings, ``user_id`` first. Users of ``log_users`` without a row are
    added with every attribute missing (their behaviour is kept; only the attributes are unknown)."""
    users = rows.assign(age=rows.get("age", ""))
    users = users[["user_id", "age", *(c for c in users.columns if c not in ("user_id", "age"))]]
    numeric = [c for c in users.columns if c == "age" or c in cfg.numeric_user_columns]
    for column in users.columns.drop("user_id"):
        values = users[column].str.strip()
        if column in numeric:
            users[column] = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            users[column] = users[column].where(values != "", None)
    if log_users is not None:
        unknown = sorted(set(log_users) - set(users["user_id"]))
        users = pd.concat([users, pd.DataFrame({"user_id": unknown})], ignore_index=True)
        users["age"] = users["age"].astype(float)
    return users.reset_index(drop=True)
