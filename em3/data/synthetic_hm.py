"""A synthetic dataset in the Kaggle H&M raw layout, with rendered product images and generated descriptions.

It runs the demo through the real path (ingest → validate → features → train), and its purchase model
needs what EM3 claims to add:
- combinations: a user's taste is bilinear in the visual attributes v (colour, pattern, shape) and the
  textual ones w (material, style, fit): ``taste(u, i, t) = Σ_k (v_i·a_uk(t)) (w_i·b_uk(t)) / (3 √rank)``
  over one-hot codes. Colour and pattern are only drawn in the image, material, style and fit only stated in
  `detail_desc`; the shape is both drawn and named. (The catalogue columns state colour and pattern too, as
  H&M's do: a text built from `prod_name` and `detail_desc` keeps the image necessary.)
- history: tastes drift slowly (Ornstein–Uhlenbeck, time constant ``drift_days``) and only past purchases
  reveal them (the customer table carries no taste);
- ID quirks: each item has a popularity that no content shows;
- cold start: a share of the products is released only in the last ``late_release_days``.
Each day brings Poisson many visits; the visitor is drawn by activity and buys a basket of 1 + Poisson(0.6)
distinct released items, drawn without replacement from softmax(taste_strength · taste +
popularity_strength · popularity). Colour variants of a product share all its other attributes and its
description. Everything is a function of the seed; `latents.json` holds the ground truth.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from em3.atomic import staged_dir
from em3.config import RawSyntheticConfig
from em3.data.synthetic_catalogue import (
    COLOURS,
    PATTERNS,
    SHAPES,
    STYLES,
    TEXTUAL,
    VISUAL,
    make_catalogue,
    one_hot,
    render,
)

MEAN_EXTRA_BASKET = 0.6  # basket size is 1 + Poisson(this)


def simulate(
    cfg: RawSyntheticConfig,
    catalogue: pd.DataFrame,
    taste: np.ndarray,
    activity: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Purchases (day, user, item) from the known model; `taste` (users, dims, rank) drifts in place."""
    visual, textual = one_hot(catalogue, VISUAL), one_hot(catalogue, TEXTUAL)  # (I, V), (I, W)
    n_visual = visual.shape[1]
    popularity = cfg.popularity_strength * catalogue["popularity"].to_numpy()
    release = catalogue["release_day"].to_numpy()
    last_seen = np.zeros(len(taste))
    visits_per_day = cfg.n_purchases / (cfg.n_days * (1 + MEAN_EXTRA_BASKET))
    purchases = []
    for day in range(cfg.n_days):
        users = rng.choice(len(taste), rng.poisson(visits_per_day), p=activity / activity.sum())
        today = np.unique(users)
        keep = np.exp(-(day - last_seen[today]) / cfg.drift_days)[:, None, None]  # exact OU step over the gap
        taste[today] = keep * taste[today] + np.sqrt(1 - keep**2) * rng.standard_normal(taste[today].shape)
        last_seen[today] = day
        a, b = taste[users, :n_visual], taste[users, n_visual:]  # (U, V, r), (U, W, r)
        # (U, I), unit variance: each one-hot code picks len(VISUAL) or len(TEXTUAL) unit-normal taste entries
        affinity = ((visual @ a) * (textual @ b)).sum(-1) / np.sqrt(len(VISUAL) * len(TEXTUAL) * cfg.taste_rank)
        scores = cfg.taste_strength * affinity + popularity
        scores[:, release > day] = -np.inf
        # the top k of Gumbel-perturbed scores: k draws from softmax(scores) without replacement
        gumbel = scores + rng.gumbel(size=scores.shape)
        baskets = np.minimum(1 + rng.poisson(MEAN_EXTRA_BASKET, len(users)), (release <= day).sum())
        ranked = np.argsort(-gumbel, axis=1)
        purchases += [(day, u, i) for u, k, order in zip(users, baskets, ranked, strict=True) for i in order[:k]]
    return pd.DataFrame(purchases, columns=["day", "user", "item"])


def hex_id(seed: int, kind: str, index: int) -> str:
    return hashlib.sha256(f"em3-raw-synthetic/{seed}/{kind}/{index}".encode()).hexdigest()


def articles_table(catalogue: pd.DataFrame) -> pd.DataFrame:
    shape = [SHAPES[i] for i in catalogue["shape"]]
    colour = [COLOURS[i] for i in catalogue["colour"]]
    style = [STYLES[i] for i in catalogue["style"]]
    pattern = [VISUAL["pattern"][i] for i in catalogue["pattern"]]
    columns = {
        "article_id": catalogue["article_id"],
        "product_code": catalogue["product_code"],
        "prod_name": catalogue["prod_name"],
        "product_type_no": [s.type_no for s in shape],
        "product_type_name": [s.name for s in shape],
        "product_group_name": [s.group for s in shape],
        "graphical_appearance_no": [PATTERNS[p] for p in pattern],
        "graphical_appearance_name": pattern,
        "colour_group_code": [c.code for c in colour],
        "colour_group_name": [c.name for c in colour],
        "perceived_colour_value_id": [c.value_id for c in colour],
        "perceived_colour_value_name": [c.value_name for c in colour],
        "perceived_colour_master_id": [c.master_id for c in colour],
        "perceived_colour_master_name": [c.master_name for c in colour],
        "department_no": [s.department_no for s in shape],
        "department_name": [s.department for s in shape],
        "index_code": [s.index[0] for s in style],
        "index_name": [s.index[1] for s in style],
        "index_group_no": [s.index[2] for s in style],
        "index_group_name": [s.index[3] for s in style],
        "section_no": [s.section[0] for s in style],
        "section_name": [s.section[1] for s in style],
        "garment_group_no": [s.garment_no for s in shape],
        "garment_group_name": [s.garment for s in shape],
        "detail_desc": catalogue["detail_desc"],
    }
    return pd.DataFrame(columns)


def customers_table(cfg: RawSyntheticConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Customer attributes as in the real table; by design they reveal nothing about taste."""
    n = cfg.n_users
    news = rng.random(n) < 0.35

    def sometimes_missing(values: np.ndarray, rate: float = 0.005) -> np.ndarray:
        return np.where(rng.random(n) < rate, None, values)

    return pd.DataFrame(
        {
            "customer_id": [hex_id(cfg.seed, "customer", u) for u in range(n)],
            "FN": np.where(news, 1.0, np.nan),
            "Active": np.where(news & (rng.random(n) < 0.95), 1.0, np.nan),
            "club_member_status": sometimes_missing(np.where(rng.random(n) < 0.95, "ACTIVE", "PRE-CREATE")),
            "fashion_news_frequency": sometimes_missing(np.where(news, "Regularly", "NONE")),
            "age": np.where(rng.random(n) < 0.005, np.nan, rng.integers(17, 78, n).astype(float)),
            "postal_code": [hex_id(cfg.seed, "postal_code", p) for p in rng.integers(0, max(1, n // 3), n)],
        }
    )


def generate_raw_synthetic(cfg: RawSyntheticConfig, out_dir: Path) -> dict:
    """Write `articles.csv`, `customers.csv`, `transactions_train.csv`, `images/NNN/<article_id>.jpg` and
    `latents.json` (the ground truth) to `out_dir`; returns a summary."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    seeds = np.random.SeedSequence(cfg.seed).spawn(4)
    rng_items, rng_users, rng_days, rng_images = (np.random.default_rng(seed) for seed in seeds)
    catalogue = make_catalogue(cfg, rng_items)
    customers = customers_table(cfg, rng_users)
    n_dims = sum(map(len, VISUAL.values())) + sum(map(len, TEXTUAL.values()))
    initial_taste = rng_users.standard_normal((cfg.n_users, n_dims, cfg.taste_rank))
    activity = rng_users.lognormal(0, 1, cfg.n_users)
    online = rng_users.beta(3, 2, cfg.n_users)  # chance that a purchase is online (sales channel 2)
    purchases = simulate(cfg, catalogue, initial_taste.copy(), activity, rng_days)

    start = cfg.end_date - timedelta(days=cfg.n_days - 1)
    discount = np.where(rng_days.random(len(purchases)) < 0.15, 0.7, 1.0)
    transactions = pd.DataFrame(
        {
            "t_dat": [(start + timedelta(days=int(d))).isoformat() for d in purchases["day"]],
            "customer_id": customers["customer_id"].to_numpy()[purchases["user"]],
            "article_id": catalogue["article_id"].to_numpy()[purchases["item"]],
            "price": (catalogue["price"].to_numpy()[purchases["item"]] * discount).round(6),
            "sales_channel_id": np.where(rng_days.random(len(purchases)) < online[purchases["user"]], 2, 1),
        }
    )
    n_rows = len(transactions)
    extra_units = rng_days.integers(1, 3, n_rows) * (rng_days.random(n_rows) < cfg.duplicate_rate)
    transactions = transactions.loc[transactions.index.repeat(1 + extra_units)]  # multi-unit: duplicate rows

    with staged_dir(out_dir, "latents.json") as staging:  # all or nothing: a crash leaves no partial raw log
        articles_table(catalogue).to_csv(staging / "articles.csv", index=False)
        customers.to_csv(staging / "customers.csv", index=False)
        transactions.to_csv(staging / "transactions_train.csv", index=False)
        for item in catalogue.itertuples():
            path = staging / "images" / item.article_id[:3] / f"{item.article_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            names = VISUAL["colour"][item.colour], VISUAL["pattern"][item.pattern], VISUAL["shape"][item.shape]
            render(*names, cfg.image_size, rng_images).save(path, quality=90)

        latents = {
            "config": cfg.model_dump(mode="json"),
            "start_date": start.isoformat(),
            "model": {
                "score": "taste_strength * sum_k (v.a_k)(w.b_k) / (3 sqrt(taste_rank))"
                " + popularity_strength * popularity",
                "taste_dims": [
                    f"{name}={value}" for group in (VISUAL, TEXTUAL) for name, vocab in group.items() for value in vocab
                ],
                "taste_drift": "Ornstein-Uhlenbeck towards N(0, 1), time constant drift_days",
                "basket": f"1 + Poisson({MEAN_EXTRA_BASKET}) items without replacement",
            },
            "vocab": {**VISUAL, **TEXTUAL},
            "items": [
                {
                    "article_id": item.article_id,
                    "product_code": int(item.product_code),
                    **{name: vocab[getattr(item, name)] for name, vocab in {**VISUAL, **TEXTUAL}.items()},
                    "popularity": round(float(item.popularity), 4),
                    "release_day": int(item.release_day),
                }
                for item in catalogue.itertuples()
            ],
            "users": [
                {
                    "customer_id": cid,
                    "activity": round(float(a), 4),
                    "online": round(float(o), 4),
                    "initial_taste": np.round(t, 4).tolist(),
                }
                for cid, a, o, t in zip(customers["customer_id"], activity, online, initial_taste, strict=True)
            ],
        }
        (staging / "latents.json").write_text(json.dumps(latents))
    return {
        "out_dir": str(out_dir),
        "users": cfg.n_users,
        "items": len(catalogue),
        "products": int(catalogue["product_code"].nunique()),
        "late_items": int((catalogue["release_day"] > 0).sum()),
        "transactions": len(transactions),
        "start_date": start.isoformat(),
        "end_date": cfg.end_date.isoformat(),
        "seconds": round(time.perf_counter() - started, 3),
    }
