"""The synthetic fashion catalogue that both synthetic logs share (``synthetic_hm``: the H&M raw layout;
``synthetic_impressions``: a native impression log): products with visual attributes (colour, pattern, shape),
drawn in a rendered photo, and textual ones (material, style, fit), stated in a generated description; colour
variants of a product share everything but the colour."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from em3.config import RawSyntheticConfig

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
