"""The raw-layout synthetic generator: the H&M layout, well-formed ids, determinism, recoverable latents."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter
from pydantic import ValidationError

from em3.config import RawSyntheticConfig
from em3.data.synthetic_catalogue import BACKGROUND, COLOURS, TEXTUAL, silhouette
from em3.data.synthetic_hm import generate_raw_synthetic

TABLES = ("articles.csv", "customers.csv", "transactions_train.csv")
SMALL = RawSyntheticConfig(n_users=40, n_items=30, n_purchases=300, n_days=20, late_release_days=5, image_size=64)


def read(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(directory / table, dtype={"article_id": str})


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The default-sized dataset: (directory, report, latents)."""
    out = tmp_path_factory.mktemp("raw")
    report = generate_raw_synthetic(RawSyntheticConfig(), out)
    return out, report, json.loads((out / "latents.json").read_text())


def test_layout_and_columns_match_the_real_sample(raw, hm_sample):
    out, _, _ = raw
    for table in TABLES:
        ours, real = read(out, table), read(hm_sample, table)
        assert list(ours.columns) == list(real.columns), table
        assert ours.dtypes.astype(str).to_dict() == real.dtypes.astype(str).to_dict(), table
    real_image = next((hm_sample / "images").glob("*/*.jpg"))
    assert real_image.parent.name == real_image.stem[:3]
    for article_id in read(out, "articles.csv")["article_id"]:
        assert (out / "images" / article_id[:3] / f"{article_id}.jpg").is_file()


def test_ids_dates_and_sizes_are_well_formed(raw):
    out, report, _ = raw
    cfg = RawSyntheticConfig()
    articles, customers, transactions = (read(out, table) for table in TABLES)
    assert len(articles) == report["items"] == cfg.n_items and len(customers) == cfg.n_users
    assert articles["article_id"].str.fullmatch(r"0\d{9}").all() and articles["article_id"].is_unique
    assert (articles["article_id"].str[1:7].astype(int) == articles["product_code"]).all()
    assert customers["customer_id"].str.fullmatch(r"[0-9a-f]{64}").all() and customers["customer_id"].is_unique
    assert set(transactions["customer_id"]) <= set(customers["customer_id"])
    assert set(transactions["article_id"]) <= set(articles["article_id"])
    days = pd.to_datetime(transactions["t_dat"], format="%Y-%m-%d").dt.date
    assert days.max() == date(2020, 9, 22) and days.min() >= date(2020, 9, 22) - timedelta(days=cfg.n_days - 1)
    assert days.is_monotonic_increasing
    assert 0.9 * cfg.n_purchases < len(transactions.drop_duplicates()) < 1.1 * cfg.n_purchases
    assert transactions.duplicated().sum() > 0, "multi-unit purchases appear as duplicate rows, as in the real log"
    assert (transactions["price"] > 0).all() and set(transactions["sales_channel_id"]) == {1, 2}
    assert (articles.groupby("product_code")["detail_desc"].nunique() == 1).all(), "variants share a description"
    assert report["seconds"] < 15


def tree_digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_generation_is_deterministic_given_the_seed(tmp_path):
    generate_raw_synthetic(SMALL, tmp_path / "a")
    generate_raw_synthetic(SMALL, tmp_path / "b")
    generate_raw_synthetic(SMALL.model_copy(update={"seed": 1}), tmp_path / "c")
    a, b, c = (tree_digest(tmp_path / name) for name in "abc")
    assert a == b and len(a) == 4 + SMALL.n_items
    assert a["transactions_train.csv"] != c["transactions_train.csv"] and a["articles.csv"] != c["articles.csv"]


def nearest_colour(rgb: np.ndarray) -> str:
    return min(COLOURS, key=lambda colour: np.linalg.norm(np.array(colour.rgb) - rgb)).name


def test_images_show_the_visual_latents(raw):
    out, _, latents = raw
    size = latents["config"]["image_size"]
    shapes = latents["vocab"]["shape"]
    masks = {shape: np.array(silhouette(shape, size)) > 127 for shape in shapes}
    inner = {s: np.array(silhouette(s, size).filter(ImageFilter.MinFilter(5))) > 127 for s in shapes}
    for item in latents["items"]:
        path = out / "images" / item["article_id"][:3] / f"{item['article_id']}.jpg"
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (size, size)
            pixels = np.asarray(image.convert("RGB")).astype(float)
        garment = pixels[inner[item["shape"]]]  # (n, 3) pixels well inside the silhouette
        assert nearest_colour(np.median(garment, axis=0)) == item["colour"], item
        foreground = np.abs(pixels - BACKGROUND).max(-1) > 12
        iou = {s: (foreground & m).sum() / (foreground | m).sum() for s, m in masks.items()}
        assert max(iou, key=iou.get) == item["shape"] and iou[item["shape"]] > 0.8, (item, iou)
        off_colour = (np.linalg.norm(garment - np.median(garment, axis=0), axis=1) > 40).mean()
        assert (off_colour < 0.03) if item["pattern"] == "Solid" else (off_colour > 0.08), (item, off_colour)


def test_descriptions_and_columns_state_the_latents(raw):
    out, _, latents = raw
    articles = read(out, "articles.csv").set_index("article_id")
    for item in latents["items"]:
        article = articles.loc[item["article_id"]]
        words = set(re.findall(r"[a-z]+", article["detail_desc"].lower()))
        for attribute, vocabulary in TEXTUAL.items():
            assert words & set(vocabulary) == {item[attribute]}, (attribute, article["detail_desc"])
        assert article["colour_group_name"] == item["colour"]
        assert article["graphical_appearance_name"] == item["pattern"]
        assert article["product_type_name"] == item["shape"]


def test_purchases_follow_the_known_model(raw):
    out, report, latents = raw
    cfg = RawSyntheticConfig()
    transactions = read(out, "transactions_train.csv").drop_duplicates()
    items = pd.DataFrame(latents["items"]).set_index("article_id")
    day = (pd.to_datetime(transactions["t_dat"]) - pd.Timestamp(latents["start_date"])).dt.days.to_numpy()
    release = items.loc[transactions["article_id"], "release_day"].to_numpy()
    assert (day >= release).all(), "nothing is bought before its release"
    late = items.index[items["release_day"] > 0]
    assert report["late_items"] == len(late) > 0 and items.loc[late, "release_day"].min() >= 120 - 21
    assert transactions["article_id"].isin(late).sum() > 50, "late items are bought: cold start in the test period"

    counts = transactions["article_id"].value_counts().reindex(items.index, fill_value=0)
    early = items["release_day"] == 0
    assert items.loc[early, "popularity"].rank().corr(counts[early].rank()) > 0.6, "popularity is an ID quirk"

    # Tastes: purchased items score high under the buyer's initial taste early on, less as tastes drift.
    dims = [dim.split("=") for dim in latents["model"]["taste_dims"]]
    one_hot = np.array([[item[name] == value for name, value in dims] for item in latents["items"]], dtype=float)
    n_visual = sum(name in ("colour", "pattern", "shape") for name, _ in dims)
    taste = {user["customer_id"]: np.array(user["initial_taste"]) for user in latents["users"]}
    row = {article_id: i for i, article_id in enumerate(items.index)}
    released_by = items["release_day"].to_numpy()

    def mean_z(first: int, last: int) -> float:
        z = []
        for customer, article, d in zip(transactions["customer_id"], transactions["article_id"], day, strict=True):
            if first <= d < last:
                t = taste[customer]
                affinity = ((one_hot[:, :n_visual] @ t[:n_visual]) * (one_hot[:, n_visual:] @ t[n_visual:])).sum(-1)
                available = affinity[released_by <= d]
                z.append((affinity[row[article]] - available.mean()) / available.std())
        return float(np.mean(z))

    early_z, late_z = mean_z(0, 15), mean_z(cfg.n_days - 30, cfg.n_days)
    assert early_z > 1.0, early_z
    assert late_z < early_z - 0.8, (early_z, late_z)


def test_config_rejects_a_late_window_longer_than_the_log():
    with pytest.raises(ValidationError, match="late_release_days"):
        RawSyntheticConfig(n_days=10, late_release_days=10)


def test_a_crash_mid_generation_leaves_no_partial_raw_log_and_the_previous_one_intact(tmp_path, monkeypatch):
    import em3.data.synthetic_hm as raw_synthetic

    out = tmp_path / "raw"
    generate_raw_synthetic(SMALL, out)
    before = (out / "transactions_train.csv").read_bytes()
    rendered = []

    def failing_render(*args):
        if len(rendered) == 10:
            raise OSError("disk full")
        rendered.append(1)
        return render(*args)

    render = raw_synthetic.render
    monkeypatch.setattr(raw_synthetic, "render", failing_render)
    with pytest.raises(OSError, match="disk full"):
        generate_raw_synthetic(SMALL.model_copy(update={"seed": 1}), out)
    assert (out / "transactions_train.csv").read_bytes() == before and (out / "latents.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]  # the staging folder is gone
