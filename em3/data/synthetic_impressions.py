"""The raw synthetic catalogue (em3.data.synthetic_hm) as a *native* impression log, written fast at any scale.

For scale tests and the quality benchmark's synthetic table: a million impressions and a hundred thousand items
in about a minute, in memory of a few bytes per impression. Items are those of ``make_catalogue`` (rendered
images, templated descriptions; every product's text names its code, so texts stay distinct at any catalogue size
and the text encoder's work grows with it). Impressions are drawn and written in chunks of ``CHUNK`` rows: a day,
a user (by activity), an item shown that day, and a click with probability ``sigmoid(taste_strength * taste +
popularity_strength * popularity + CLICK_BIAS)``, with the same bilinear visual x textual taste as the purchase
model (held fixed: no drift, no baskets). Two settings make content decide, as on a real fashion site:
- ``shelf_days`` > 0: products are released throughout the log and shown with weight ``exp(-age / shelf_days)``,
  so most items of the validation and test days were never shown in training (only content describes them);
- ``taste_segments`` > 0: each user's taste is one of that many shared segment tastes plus ``segment_spread``
  times their own, so what one user's clicks teach about a combination of attributes carries over to others,
  and a user's segment shows in their history.
Of the ``RawSyntheticConfig`` fields, ``n_purchases``, ``drift_days`` and ``duplicate_rate`` are not used, nor,
with ``shelf_days``, ``late_item_fraction`` and ``late_release_days``.

Writes ``items.parquet`` (``item_id, text, image_path, product_code, product_type_name, colour_group_name``),
``impressions.parquet`` (``user_id, item_id, ts, label, sales_channel_id``), ``images/NNN/<item_id>.jpg``,
``click_model.json`` (how well the true click probabilities, their taste part and popularity alone rank the log's
clicks: the ceiling no model can pass) and ``click_truth.parquet`` (each impression's day, click and true logit,
from which ``oracle_by_split`` scores that ceiling on each split). ``ingest.format: native``, ``native_log:
impressions.parquet`` and ``native_items: items.parquet`` read it (em3.ingest.native).
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from em3.config import RawSyntheticConfig
from em3.data.synthetic_catalogue import (
    COLOURS,
    FITS,
    MATERIALS,
    SHAPES,
    STYLES,
    TEXTUAL,
    VISUAL,
    make_catalogue,
    render,
)
from em3.metrics import auc
from em3.validation.contract import SPLITS, assign_split

CLICK_TRUTH = "click_truth.parquet"  # each impression's day, click and true logit, in the log's order
TRUTH = pa.schema([("ts", pa.date32()), ("label", pa.int8()), ("logit", pa.float32())])
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
            "text": catalogue["prod_name"]
            + " "
            + catalogue["product_code"].astype(str)
            + ". "
            + catalogue["detail_desc"],
            "image_path": "images/" + ids.str[:3] + "/" + ids + ".jpg",
            "product_code": catalogue["product_code"].astype(str),
            "product_type_name": [SHAPES[i].name for i in catalogue["shape"]],
            "colour_group_name": [COLOURS[i].name for i in catalogue["colour"]],
        }
    )


def write_images(cfg: RawSyntheticConfig, catalogue: pd.DataFrame, out_dir: Path, rng: np.random.Generator) -> None:
    for item in catalogue.itertuples():
        path = out_dir / "images" / item.article_id[:3] / f"{item.article_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        names = VISUAL["colour"][item.colour], VISUAL["pattern"][item.pattern], VISUAL["shape"][item.shape]
        render(*names, cfg.image_size, rng).save(path, quality=90)


def draw_tastes(cfg: RawSyntheticConfig, n_dims: int, rng: np.random.Generator) -> np.ndarray:
    """(n_users, n_dims, taste_rank) unit-variance tastes: independent, or with ``taste_segments`` a segment's taste
    plus ``segment_spread`` times the user's own, rescaled."""
    own = rng.standard_normal((cfg.n_users, n_dims, cfg.taste_rank))
    if not cfg.taste_segments:
        return own
    segments = rng.standard_normal((cfg.taste_segments, n_dims, cfg.taste_rank))
    member = rng.integers(cfg.taste_segments, size=cfg.n_users)
    return (segments[member] + cfg.segment_spread * own) / np.sqrt(1 + cfg.segment_spread**2)


def release_days(cfg: RawSyntheticConfig, catalogue: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Each item's release day: the catalogue's, or with ``shelf_days`` one per product drawn evenly from three
    shelf lives before the first day to the last day (colour variants are released together)."""
    if not cfg.shelf_days:
        return catalogue["release_day"].to_numpy()
    _, product = np.unique(catalogue["product_code"].to_numpy(), return_inverse=True)
    return rng.integers(-int(np.ceil(3 * cfg.shelf_days)), cfg.n_days, product.max() + 1)[product]


def shown_items(cfg: RawSyntheticConfig, release: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The item of each impression: among the items released by its day, uniformly or with weight
    ``exp(-age / shelf_days)``."""
    item = np.empty(len(day), dtype=np.int64)
    for today in np.unique(day):
        rows = np.flatnonzero(day == today)
        age = today - release
        weight = (age >= 0) * (np.exp(-np.maximum(age, 0) / cfg.shelf_days) if cfg.shelf_days else 1.0)
        cumulative = np.cumsum(weight)
        item[rows] = np.searchsorted(cumulative, rng.random(len(rows)) * cumulative[-1], side="right")
    return item


def deciding_words(catalogue: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Per item, the words of its text that the click model reads: its material, style and fit."""
    return [
        (MATERIALS[material].name, STYLES[style].name, FITS[fit])
        for material, style, fit in catalogue[["material", "style", "fit"]].itertuples(index=False)
    ]


def random_streams(cfg: RawSyntheticConfig) -> tuple[np.random.Generator, ...]:
    """The generator's independent random streams: items, users, the log, images."""
    return tuple(np.random.default_rng(seed) for seed in np.random.SeedSequence(cfg.seed).spawn(4))


def native_catalogue(cfg: RawSyntheticConfig) -> pd.DataFrame:
    """The catalogue ``generate_native_synthetic`` writes for ``cfg`` (the same draws), without writing anything."""
    return make_catalogue(cfg, random_streams(cfg)[0])


def oracle_by_split(source: Path, valid_start: date, test_start: date) -> dict[str, float]:
    """How well the true click logits rank the clicks in each split of the log in ``source`` (the split dates of
    ingest's manifest): the ceiling no model can pass on the rows it is scored on."""
    truth = pd.read_parquet(Path(source) / CLICK_TRUTH)
    split = assign_split(pd.to_datetime(truth["ts"]), valid_start, test_start)
    return {name: auc(truth["label"][split == name], truth["logit"][split == name]) for name in SPLITS}


def generate_native_synthetic(cfg: RawSyntheticConfig, n_impressions: int, out_dir: Path) -> dict:
    """Write the native layout with ``n_impressions`` impressions to ``out_dir``; returns a summary."""
    if n_impressions <= 0:
        raise ValueError(f"n_impressions must be positive, got {n_impressions}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng_items, rng_users, rng_log, rng_images = random_streams(cfg)
    catalogue = make_catalogue(cfg, rng_items)
    release = release_days(cfg, catalogue, rng_items)
    items_table(catalogue).to_parquet(out_dir / "items.parquet", index=False)
    write_images(cfg, catalogue, out_dir, rng_images)

    n_visual = sum(map(len, VISUAL.values()))
    visual = attribute_columns(catalogue, VISUAL, 0)  # (I, 3) columns of the taste
    textual = attribute_columns(catalogue, TEXTUAL, n_visual)  # (I, 3)
    taste = draw_tastes(cfg, n_visual + sum(map(len, TEXTUAL.values())), rng_users)
    activity = rng_users.lognormal(0, 1, cfg.n_users)
    online = rng_users.beta(3, 2, cfg.n_users)
    user_ids = np.array([f"u{user:08d}" for user in range(cfg.n_users)], dtype=object)
    item_ids = catalogue["article_id"].to_numpy(dtype=object)
    popularity = cfg.popularity_strength * catalogue["popularity"].to_numpy()
    first_day = np.datetime64(cfg.end_date - timedelta(days=cfg.n_days - 1), "D")
    scale = np.sqrt(len(VISUAL) * len(TEXTUAL) * cfg.taste_rank)

    labels, tastes, pops = [], [], []  # per chunk: the click and its true logit's parts, for click_model.json
    with (
        pq.ParquetWriter(out_dir / "impressions.parquet", IMPRESSIONS) as writer,
        pq.ParquetWriter(out_dir / CLICK_TRUTH, TRUTH) as truth_writer,
    ):
        for begin in range(0, n_impressions, CHUNK):
            n = min(CHUNK, n_impressions - begin)
            day = rng_log.integers(0, cfg.n_days, n)
            user = rng_log.choice(cfg.n_users, n, p=activity / activity.sum())
            item = shown_items(cfg, release, day, rng_log)
            looks = taste[user[:, None], visual[item]].sum(1)  # (n, rank): v_i . a_uk
            reads = taste[user[:, None], textual[item]].sum(1)  # (n, rank): w_i . b_uk
            liking = cfg.taste_strength * (looks * reads).sum(1) / scale
            logit = liking + popularity[item] + CLICK_BIAS
            label = rng_log.random(n) < 1 / (1 + np.exp(-logit))
            channel = np.where(rng_log.random(n) < online[user], 2, 1)
            labels.append(label)
            tastes.append(liking.astype(np.float32))
            pops.append(popularity[item].astype(np.float32))
            chunk = {
                "user_id": user_ids[user],
                "item_id": item_ids[item],
                "ts": first_day + day,
                "label": label.astype(np.int8),
                "sales_channel_id": channel.astype(np.int8),
            }
            writer.write_table(pa.table(chunk, schema=IMPRESSIONS))
            truth = {"ts": chunk["ts"], "label": chunk["label"], "logit": logit.astype(np.float32)}
            truth_writer.write_table(pa.table(truth, schema=TRUTH))
    label, liking, pop = (np.concatenate(parts) for parts in (labels, tastes, pops))
    click_model = {
        "oracle_auc": auc(label, liking + pop),
        "taste_auc": auc(label, liking),
        "popularity_auc": auc(label, pop),
    }
    (out_dir / "click_model.json").write_text(json.dumps(click_model, indent=1))
    return {
        "out_dir": str(out_dir),
        "users": cfg.n_users,
        "items": len(catalogue),
        "impressions": n_impressions,
        "clicks": int(label.sum()),
        **click_model,
        "seconds": round(time.perf_counter() - started, 3),
    }
