"""The raw synthetic catalogue (em3.data.raw_synthetic) as a *native* impression log, written fast at any scale.

For scale tests: a million impressions and a hundred thousand items in about a minute, in bounded memory. Items
are those of ``make_catalogue`` (rendered images, templated descriptions; every product's text names its code, so
texts stay distinct at any catalogue size and the text encoder's work grows with it). Impressions are drawn and
written in chunks of ``CHUNK`` rows: a day, a user (by activity), an item released by that day (uniformly), and a
click with probability ``sigmoid(taste_strength * taste + popularity_strength * popularity + CLICK_BIAS)``, with the
same bilinear visual x textual taste as the purchase model (held fixed: no drift, no baskets). Of the
``RawSyntheticConfig`` fields, ``n_purchases``, ``drift_days`` and ``duplicate_rate`` are not used.

Writes ``items.parquet`` (``item_id, text, image_path, product_code, product_type_name, colour_group_name``),
``impressions.parquet`` (``user_id, item_id, ts, label, sales_channel_id``) and ``images/NNN/<item_id>.jpg``:
the native layout of em3.ingest.native (``ingest.format: native``, ``native_log: impressions.parquet``,
``native_items: items.parquet``).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from em3.config import RawSyntheticConfig
from em3.data.raw_synthetic import COLOURS, SHAPES, TEXTUAL, VISUAL, make_catalogue, render

CHUNK = 200_000  # impressions drawn and written at a time
CLICK_BIAS = -2.5  # logit offset: about one impression in five is a click
IMPRESSIONS = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("ts", pa.date32()),
        ("label", pa.int8()),
        ("sales_channel_id", pa.int8()),
    ]
)


def attribute_columns(catalogue: pd.DataFrame, attributes: dict[str, list[str]], start: int) -> np.ndarray:
    """(n_items, len(attributes)) column of each item's value of each attribute in the concatenated one-hot code."""
    offsets = start + np.cumsum([0, *map(len, attributes.values())])[:-1]
    columns = [catalogue[name].to_numpy() + offset for name, offset in zip(attributes, offsets, strict=True)]
    return np.stack(columns, axis=1)


def items_table(catalogue: pd.DataFrame) -> pd.DataFrame:
    ids = catalogue["article_id"]
    return pd.DataFrame(
        {
            "item_id": ids,
            "text": catalogue["prod_name"] + " " + catalogue["product_code"].astype(str) + ". "
            + catalogue["detail_desc"],
            "image_path": "images/" + ids.str[:3] + "/" + ids + ".jpg",
            "product_code": catalogue["product_code"].astype(str),
            "product_type_name": [SHAPES[i].name for i in catalogue["shape"]],
            "colour_group_name": [COLOURS[i].name for i in catalogue["colour"]],
        }
    )  # fmt: skip


def write_images(cfg: RawSyntheticConfig, catalogue: pd.DataFrame, out_dir: Path, rng: np.random.Generator) -> None:
    for item in catalogue.itertuples():
        path = out_dir / "images" / item.article_id[:3] / f"{item.article_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        names = VISUAL["colour"][item.colour], VISUAL["pattern"][item.pattern], VISUAL["shape"][item.shape]
        render(*names, cfg.image_size, rng).save(path, quality=90)


def generate_native_synthetic(cfg: RawSyntheticConfig, n_impressions: int, out_dir: Path) -> dict:
    """Write the native layout with ``n_impressions`` impressions to ``out_dir``; returns a summary."""
    if n_impressions <= 0:
        raise ValueError(f"n_impressions must be positive, got {n_impressions}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    rng_items, rng_users, rng_log, rng_images = (np.random.default_rng(seed) for seed in seeds)
    catalogue = make_catalogue(cfg, rng_items)
    items_table(catalogue).to_parquet(out_dir / "items.parquet", index=False)
    write_images(cfg, catalogue, out_dir, rng_images)

    n_visual = sum(map(len, VISUAL.values()))
    visual = attribute_columns(catalogue, VISUAL, 0)  # (I, 3) columns of the taste
    textual = attribute_columns(catalogue, TEXTUAL, n_visual)  # (I, 3)
    taste = rng_users.standard_normal((cfg.n_users, n_visual + sum(map(len, TEXTUAL.values())), cfg.taste_rank))
    activity = rng_users.lognormal(0, 1, cfg.n_users)
    online = rng_users.beta(3, 2, cfg.n_users)
    user_ids = np.array([f"u{user:08d}" for user in range(cfg.n_users)], dtype=object)
    item_ids = catalogue["article_id"].to_numpy(dtype=object)
    popularity = cfg.popularity_strength * catalogue["popularity"].to_numpy()
    by_release = np.argsort(catalogue["release_day"].to_numpy(), kind="stable")
    released_by = np.searchsorted(catalogue["release_day"].to_numpy()[by_release], np.arange(cfg.n_days), "right")
    first_day = np.datetime64(cfg.end_date - timedelta(days=cfg.n_days - 1), "D")
    scale = np.sqrt(len(VISUAL) * len(TEXTUAL) * cfg.taste_rank)

    clicks = 0
    with pq.ParquetWriter(out_dir / "impressions.parquet", IMPRESSIONS) as writer:
        for begin in range(0, n_impressions, CHUNK):
            n = min(CHUNK, n_impressions - begin)
            day = rng_log.integers(0, cfg.n_days, n)
            user = rng_log.choice(cfg.n_users, n, p=activity / activity.sum())
            item = by_release[(rng_log.random(n) * released_by[day]).astype(np.int64)]
            looks = taste[user[:, None], visual[item]].sum(1)  # (n, rank): v_i . a_uk
            reads = taste[user[:, None], textual[item]].sum(1)  # (n, rank): w_i . b_uk
            logit = cfg.taste_strength * (looks * reads).sum(1) / scale + popularity[item] + CLICK_BIAS
            label = rng_log.random(n) < 1 / (1 + np.exp(-logit))
            channel = np.where(rng_log.random(n) < online[user], 2, 1)
            clicks += int(label.sum())
            chunk = {
                "user_id": user_ids[user],
                "item_id": item_ids[item],
                "ts": first_day + day,
                "label": label.astype(np.int8),
                "sales_channel_id": channel.astype(np.int8),
            }
            writer.write_table(pa.table(chunk, schema=IMPRESSIONS))
    return {
        "out_dir": str(out_dir),
        "users": cfg.n_users,
        "items": len(catalogue),
        "impressions": n_impressions,
        "clicks": clicks,
        "seconds": round(time.perf_counter() - started, 3),
    }
