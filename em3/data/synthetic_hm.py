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
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from em3.atomic import staged_dir
from em3.config import RawSyntheticConfig

MEAN_EXTRA_BASKET = 0.6  # basket size is 1 + Poisson(this)
BACKGROUND = (215, 215, 215)  # light grey studio background, distinct from every garment colour


class Colour(NamedTuple):
    name: str
    code: int
    value_id: int
    value_name: str
    master_id: int
    master_name: str
    rgb: tuple[int, int, int]


class Shape(NamedTuple):
    name: str  # product type name
    type_no: int
    group: str
    garment_no: int
    garment: str
    department_no: int
    department: str
    noun: str
    details: tuple[str, ...]
    outline: tuple[tuple[float, float], ...]  # polygon in unit coordinates


class Style(NamedTuple):
    name: str
    sentences: tuple[str, ...]
    index: tuple[str, str, int, str]  # index_code, index_name, index_group_no, index_group_name
    section: tuple[int, str]


class Material(NamedTuple):
    name: str
    phrases: tuple[str, ...]
    price: float


COLOURS = (
    Colour("Black", 9, 4, "Dark", 5, "Black", (25, 25, 25)),
    Colour("White", 10, 3, "Light", 9, "White", (248, 248, 245)),
    Colour("Beige", 13, 2, "Medium Dusty", 11, "Beige", (205, 180, 135)),
    Colour("Yellow", 22, 7, "Medium", 8, "Yellow", (240, 200, 40)),
    Colour("Orange", 32, 7, "Medium", 3, "Orange", (235, 125, 30)),
    Colour("Red", 42, 5, "Bright", 18, "Red", (195, 30, 40)),
    Colour("Pink", 52, 2, "Medium Dusty", 4, "Pink", (235, 140, 175)),
    Colour("Purple", 62, 2, "Medium Dusty", 6, "Lilac Purple", (120, 60, 150)),
    Colour("Light Blue", 71, 1, "Dusty Light", 2, "Blue", (135, 180, 230)),
    Colour("Dark Blue", 73, 4, "Dark", 2, "Blue", (30, 45, 115)),
    Colour("Dark Green", 93, 2, "Medium Dusty", 19, "Green", (30, 105, 55)),
)
PATTERNS = {"Solid": 1010016, "Stripe": 1010017, "Dot": 1010006, "Check": 1010004}  # graphical_appearance
SHAPES = (
    Shape(
        "T-shirt",
        255,
        "Garment Upper body",
        1002,
        "Jersey Basic",
        1676,
        "Jersey Basic",
        "top",
        ("a round neckline and short sleeves", "a rounded hem", "a chest pocket"),
        (
            (0.35, 0.18),
            (0.65, 0.18),
            (0.86, 0.34),
            (0.77, 0.46),
            (0.7, 0.4),
            (0.7, 0.86),
            (0.3, 0.86),
            (0.3, 0.4),
            (0.23, 0.46),
            (0.14, 0.34),
        ),
    ),
    Shape(
        "Jacket",
        262,
        "Garment Upper body",
        1007,
        "Outdoor",
        1201,
        "Outerwear",
        "jacket",
        ("a zip down the front and side pockets", "a stand-up collar", "press-studs at the cuffs"),
        (
            (0.36, 0.12),
            (0.64, 0.12),
            (0.84, 0.26),
            (0.92, 0.84),
            (0.8, 0.86),
            (0.72, 0.42),
            (0.72, 0.9),
            (0.28, 0.9),
            (0.28, 0.42),
            (0.2, 0.86),
            (0.08, 0.84),
            (0.16, 0.26),
        ),
    ),
    Shape(
        "Dress",
        265,
        "Garment Full body",
        1013,
        "Dresses Ladies",
        1322,
        "Dress",
        "dress",
        ("a V-neck and a flared skirt", "narrow shoulder straps", "a tie belt at the waist"),
        ((0.4, 0.08), (0.6, 0.08), (0.63, 0.4), (0.82, 0.93), (0.18, 0.93), (0.37, 0.4)),
    ),
    Shape(
        "Trousers",
        272,
        "Garment Lower body",
        1009,
        "Trousers",
        1722,
        "Trouser",
        "trousers",
        ("a zip fly and side pockets", "an elasticated waist", "pressed creases"),
        ((0.31, 0.1), (0.69, 0.1), (0.74, 0.93), (0.56, 0.93), (0.5, 0.38), (0.44, 0.93), (0.26, 0.93)),
    ),
    Shape(
        "Skirt",
        275,
        "Garment Lower body",
        1012,
        "Skirts",
        1410,
        "Skirt",
        "skirt",
        ("a concealed zip at the back", "a wide waistband", "a slit at the hem"),
        ((0.33, 0.28), (0.67, 0.28), (0.82, 0.76), (0.18, 0.76)),
    ),
)
MATERIALS = (
    Material("cotton", ("soft cotton jersey", "cotton twill", "washed cotton"), 0.017),
    Material("linen", ("airy linen", "washed linen", "a linen weave"), 0.025),
    Material("wool", ("soft wool", "a fine wool knit", "brushed wool"), 0.035),
    Material("silk", ("smooth silk", "silk satin", "lightweight silk"), 0.045),
    Material("denim", ("stretch denim", "rigid denim", "washed denim"), 0.030),
)
STYLES = (
    Style(
        "casual",
        ("A casual piece for every day.", "Easy to wear in a casual look."),
        ("A", "Ladieswear", 1, "Ladieswear"),
        (15, "Womens Everyday Collection"),
    ),
    Style(
        "elegant",
        ("An elegant choice for evenings out.", "Elegant lines for a polished look."),
        ("A", "Ladieswear", 1, "Ladieswear"),
        (11, "Womens Tailoring"),
    ),
    Style(
        "sporty",
        ("A sporty design made for movement.", "Sporty details for an active day."),
        ("S", "Sport", 26, "Sport"),
        (5, "Ladies H&M Sport"),
    ),
    Style(
        "vintage",
        ("Vintage-inspired details.", "A vintage look with a nostalgic feel."),
        ("D", "Divided", 2, "Divided"),
        (53, "Divided Collection"),
    ),
)
FITS = ("slim", "regular", "relaxed", "oversized")
FIT_SENTENCES = ("{Fit} fit.", "Cut in a {fit} fit.", "A {fit} fit that is comfortable to wear.")
NAMES = ("Ava", "Bella", "Cleo", "Dana", "Elin", "Greta", "Hanna", "Ines", "Juno", "Kira", "Lola", "Maja")

VISUAL = {"colour": [c.name for c in COLOURS], "pattern": list(PATTERNS), "shape": [s.name for s in SHAPES]}
TEXTUAL = {"material": [m.name for m in MATERIALS], "style": [s.name for s in STYLES], "fit": list(FITS)}


def silhouette(shape: str, size: int) -> Image.Image:
    """The garment's mask ("L", 255 inside) on a size × size canvas."""
    outline = next(s.outline for s in SHAPES if s.name == shape)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([(x * size, y * size) for x, y in outline], fill=255)
    return mask


def render(colour: str, pattern: str, shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A product photo: the garment's silhouette filled with its colour (shade jittered) and pattern, on grey.

    Patterns cover under a third of the garment in a contrast shade: the garment's median colour is its own.
    """
    rgb = np.array(next(c.rgb for c in COLOURS if c.name == colour)) * rng.uniform(0.93, 1.07)
    target = 255.0 if rgb.mean() < 128 else 0.0
    base, contrast = (tuple(int(v) for v in np.clip(x, 0, 255)) for x in (rgb, rgb + 0.55 * (target - rgb)))
    fabric = Image.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(fabric)
    period = size * rng.uniform(0.08, 0.13)
    offsets = np.arange(rng.uniform(-period, 0), size, period)
    for t in offsets:
        if pattern == "Stripe":
            draw.rectangle((0, t, size, t + period / 3), fill=contrast)
        elif pattern == "Check":
            draw.rectangle((t, 0, t + period / 6, size), fill=contrast)
            draw.rectangle((0, t, size, t + period / 6), fill=contrast)
        elif pattern == "Dot":
            for u in offsets:
                draw.ellipse((u, t, u + period / 2.5, t + period / 2.5), fill=contrast)
    image = Image.new("RGB", (size, size), BACKGROUND)
    image.paste(fabric, mask=silhouette(shape, size))
    return image


def describe(shape: Shape, material: Material, style: Style, fit: str, rng: np.random.Generator) -> str:
    """A detail_desc: the material, style and fit each stated once, in varied templated sentences."""
    first = f"{shape.noun.capitalize()} in {rng.choice(material.phrases)} with {rng.choice(shape.details)}."
    fit_sentence = str(rng.choice(FIT_SENTENCES)).format(Fit=fit.capitalize(), fit=fit)
    rest = [fit_sentence, str(rng.choice(style.sentences))]
    rng.shuffle(rest)
    return " ".join([first, *rest])


def make_catalogue(cfg: RawSyntheticConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One row per article: latent attribute indices, popularity, release day, price, name and description."""
    variants = 1 + np.minimum(rng.poisson(0.7, cfg.n_items), 2)  # colour variants per product
    n_products = int(np.searchsorted(np.cumsum(variants), cfg.n_items)) + 1
    variants = variants[:n_products]
    variants[-1] -= variants.sum() - cfg.n_items
    codes = np.sort(rng.choice(900_000, n_products, replace=False) + 100_000)
    late = rng.random(n_products) < cfg.late_item_fraction
    release = np.where(late, rng.integers(cfg.n_days - cfg.late_release_days, cfg.n_days, n_products), 0)
    per_product = {  # every attribute but the colour is shared by a product's colour variants
        name: rng.integers(len(vocab), size=n_products)
        for name, vocab in {**VISUAL, **TEXTUAL}.items()
        if name != "colour"
    }
    rows = []
    for p in range(n_products):
        attributes = {name: int(values[p]) for name, values in per_product.items()}
        shape = SHAPES[attributes["shape"]]
        material = MATERIALS[attributes["material"]]
        text = describe(shape, material, STYLES[attributes["style"]], FITS[attributes["fit"]], rng)
        common = {
            "product_code": int(codes[p]),
            **attributes,
            "release_day": int(release[p]),
            "price": round(float(material.price * rng.lognormal(0, 0.2)), 6),
            "prod_name": f"{rng.choice(NAMES)} {shape.noun}",
            "detail_desc": text,
        }
        for variant, colour in enumerate(rng.choice(len(COLOURS), variants[p], replace=False), start=1):
            rows.append({"article_id": f"0{codes[p]:06d}{variant:03d}", "colour": int(colour), **common})
    catalogue = pd.DataFrame(rows)
    catalogue["popularity"] = rng.normal(size=len(catalogue))
    return catalogue


def one_hot(catalogue: pd.DataFrame, attributes: dict[str, list[str]]) -> np.ndarray:
    """(n_items, Σ vocabulary sizes) concatenated one-hot codes of the given attributes."""
    return np.concatenate([np.eye(len(vocab))[catalogue[name]] for name, vocab in attributes.items()], axis=1)


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
