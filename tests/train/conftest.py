"""Tables of a daily log for the warm-start and gate tests: day partitions, users and a token store."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from em3.data.token_store import TokenStore
from em3.validation.contract import partition_path

SPLIT = {"valid_start": "2020-03-08", "test_start": "2020-03-10", "cold_max_train": 1}


def write_tables(root: Path, users: list[str], items: list[str], days: int, seed: int, logged: int = 0) -> Path:
    """Day partitions from March 1 (each user sees four random items a day, of the first ``logged`` items if set;
    30 % clicks; sales channel 1 or 2), a users table with a categorical ``club``, and a token store whose rows hold
    ``items`` in that order."""
    rng = np.random.default_rng(seed)
    shown = items[:logged] if logged else items
    for d in range(days):
        day = pd.Timestamp(date(2020, 3, 1 + d))
        rows = []
        for u, user in enumerate(users):
            for k in range(4):
                ts = day + pd.Timedelta(minutes=10 * u + k)
                rows.append((user, str(rng.choice(shown)), ts, int(rng.random() < 0.3), 1 + k % 2))
        frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "label", "sales_channel_id"])
        path = partition_path(root, day.date())
        path.parent.mkdir(parents=True)
        frame.drop_duplicates(["user_id", "item_id", "ts"]).to_parquet(path)
    (root / "manifest.json").write_text(json.dumps({"params": SPLIT}))
    clubs = ["gold", "silver", "bronze"]
    pd.DataFrame({"user_id": users, "club": [clubs[int(u[1:]) % 3] for u in users]}).to_parquet(root / "users.parquet")
    n = len(items)
    content = np.random.default_rng(100)  # an item's content depends on its id, not on its row
    by_id = {f"i{k}": content.normal(size=(2 * 4 + 3 * 4 + 8)).astype(np.float16) for k in range(40)}
    vectors = np.stack([np.zeros(28, np.float16), *(by_id[item] for item in items)])
    TokenStore(
        item_ids=items,
        image_tokens=vectors[:, :8].reshape(n + 1, 2, 4),
        image_mask=np.r_[[[False, False]], np.ones((n, 2), bool)],
        text_tokens=vectors[:, 8:20].reshape(n + 1, 3, 4),
        text_mask=np.r_[[[False] * 3], np.ones((n, 3), bool)],
        pooled_image=vectors[:, 20:24],
        pooled_text=vectors[:, 24:28],
    ).save(root / "store")
    return root
