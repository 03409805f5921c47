"""Missing modalities keep the purchase (issue 11 §2, DESIGN §4): an item is known by an articles.csv row or a
photo; a missing text or photo only masks that modality; only purchases of items with neither are quarantined.
The catalogue per modality is in manifest.json and in validate's report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from em3.config import ValidateConfig
from em3.validation import DataError, run_validate
from tests.data.conftest import (
    ARTICLES,
    CUSTOMERS,
    HM_SPLIT,
    SAMPLE,
    csv_text,
    ingest,
    quarantined,
    read,
    summary,
    upload_folder,
)

PURCHASES = 6 * 7 * 3  # rows of transactions_train.csv in the tiny layout


def drop_article_rows(root: Path, articles: set[str]) -> None:
    path = root / "articles.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if line.split(",", 1)[0] not in articles))


def photo(root: Path, article: str) -> Path:
    return root / "images" / article[:3] / f"{article}.jpg"


def content(manifest_or_report: dict, name: str) -> int:
    return manifest_or_report["catalogue"]["by_content"][name]["items"]


def test_photo_without_an_article_row_is_an_image_only_item_and_keeps_its_purchases(
    hm_dir: Path, tmp_path: Path
) -> None:
    drop_article_rows(hm_dir, {ARTICLES[2]})
    manifest = ingest(hm_dir, tmp_path / "out")
    assert summary(manifest, "transactions")["rows_quarantined"] == 0  # before: its purchases were all lost
    items = read(tmp_path / "out", "items").set_index("item_id")
    assert len(items) == 12 and items.index[-1] == ARTICLES[2]  # rows first, then photo-only items
    only = items.loc[ARTICLES[2]]
    assert only["text"] == "" and only["product_type_name"] == "" and (tmp_path / "out" / only["image_path"]).is_file()
    sold = sum(ARTICLES[2] in line for line in (hm_dir / "transactions_train.csv").read_text().splitlines())
    rows = read(tmp_path / "out", "interactions")
    assert rows.query(f"item_id == '{ARTICLES[2]}' and label == 1")["units"].sum() == sold > 0
    catalogue = manifest["catalogue"]
    assert (catalogue["items_with_a_row"], catalogue["items_from_a_photo_only"]) == (11, 1)
    assert (content(manifest, "image_and_text"), content(manifest, "image_only")) == (11, 1)
    assert (
        catalogue["by_content"]["image_only"]["positive_rows"]
        == (rows.query("label == 1")["item_id"] == ARTICLES[2]).sum()
    )
    report = run_validate(ValidateConfig(), tmp_path / "out")
    assert report["passed"] and content(report, "image_only") == 1
    assert "| image only | 1 | 8.33% |" in (tmp_path / "out" / "validation" / "report.md").read_text()


def test_item_with_neither_row_nor_photo_loses_its_purchases_with_a_reason(hm_dir: Path, tmp_path: Path) -> None:
    drop_article_rows(hm_dir, {ARTICLES[2]})
    photo(hm_dir, ARTICLES[2]).unlink()
    manifest = ingest(hm_dir, tmp_path / "out")
    sold = sum(ARTICLES[2] in line for line in (hm_dir / "transactions_train.csv").read_text().splitlines())
    assert summary(manifest, "transactions")["rows_quarantined"] == sold > 0
    bad = quarantined(tmp_path / "out", "transactions")
    assert set(bad["article_id"]) == {ARTICLES[2]}
    assert (
        bad["reason"] == "expect_column_values_to_be_in_set(article_id): an item: a valid row of articles.csv or "
        f"a photo images/NNN/<article_id>.jpg, got '{ARTICLES[2]}'"
    ).all()
    assert ARTICLES[2] not in set(read(tmp_path / "out", "items")["item_id"])


def test_missing_photo_and_empty_text_mask_the_modality_and_keep_the_item(hm_dir: Path, tmp_path: Path) -> None:
    photo(hm_dir, ARTICLES[3]).unlink()  # text only
    path = hm_dir / "articles.csv"
    path.write_text(path.read_text().replace(',Item 5,Shirt,Black,"Soft, simple piece number 5."', ",,Shirt,Black,"))
    photo(hm_dir, ARTICLES[7]).unlink()
    path.write_text(path.read_text().replace(',Item 7,Shirt,Black,"Soft, simple piece number 7."', ",,Shirt,Black,"))
    manifest = ingest(hm_dir, tmp_path / "out")
    assert (
        summary(manifest, "articles")["rows_quarantined"] == summary(manifest, "transactions")["rows_quarantined"] == 0
    )
    items = read(tmp_path / "out", "items").set_index("item_id")
    assert items.loc[ARTICLES[3], "image_path"] == "" and items.loc[ARTICLES[3], "text"].startswith("Item 3.")
    assert items.loc[ARTICLES[5], ["text", "product_type_name"]].tolist() == ["", "Shirt"]  # image only
    assert items.loc[ARTICLES[7], ["text", "image_path"]].tolist() == ["", ""]  # neither: an id only, kept
    assert summary(manifest, "images")["rows_in"] == 10  # a missing photo is not a bad one
    texts = quarantined(tmp_path / "out", "texts")
    assert texts["item_id"].tolist() == [ARTICLES[5], ARTICLES[7]] and (texts["text"] == "").all()
    assert texts["reason"].str.startswith("expect_column_value_lengths_to_be_between(text): not empty").all()
    counts = {name: content(manifest, name) for name in ("image_and_text", "image_only", "text_only", "neither")}
    assert counts == {"image_and_text": 9, "image_only": 1, "text_only": 1, "neither": 1}
    assert manifest["catalogue"]["texts_masked"] == 2
    rows = read(tmp_path / "out", "interactions")
    assert rows.query("label == 1")["units"].sum() == PURCHASES  # every purchase kept
    report = run_validate(ValidateConfig(), tmp_path / "out")
    assert report["passed"] and report["catalogue"]["missing_fraction"] == {"image": 2 / 12, "text": 2 / 12}


def test_catalogue_without_images_is_valid_unless_a_limit_says_otherwise(hm_dir: Path, tmp_path: Path) -> None:
    for path in sorted((hm_dir / "images").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (hm_dir / "images").rmdir()
    manifest = ingest(hm_dir, tmp_path / "out")
    assert content(manifest, "text_only") == 12 and manifest["images"]["copied"] == 0
    assert summary(manifest, "transactions")["rows_quarantined"] == 0
    report = run_validate(ValidateConfig(), tmp_path / "out")
    assert report["passed"] and report["catalogue"]["missing"]["image"] == {
        "fraction": 1.0,
        "limit": 1.0,
        "passed": True,
    }
    with pytest.raises(
        DataError,
        match=r"^data validation failed: 100.00% of the items have no usable image "
        r"\(limit 50.00%\)",
    ):
        run_validate(ValidateConfig(max_missing_fraction={"image": 0.5}), tmp_path / "out")


def test_broken_photos_fail_only_past_a_limit_of_their_own(hm_dir: Path, tmp_path: Path) -> None:
    for article in ARTICLES[:3]:
        photo(hm_dir, article).write_bytes(b"not an image")
    ingest(hm_dir, tmp_path / "out")
    report = run_validate(ValidateConfig(), tmp_path / "out")  # 25 % masked: a modality table has no default limit
    images = next(t for t in report["tables"] if t["table"] == "images")
    assert (images["kind"], images["bad_fraction"], images["limit"], images["passed"]) == ("modality", 0.25, None, True)
    with pytest.raises(DataError, match=r"ingest/images quarantined 25.00% of its rows \(limit 10.00%\)"):
        run_validate(ValidateConfig(table_max_bad_fraction={"images": 0.1}), tmp_path / "out")


def test_photo_only_items_come_from_s3_too(hm_dir: Path, s3, tmp_path: Path) -> None:
    drop_article_rows(hm_dir, set(ARTICLES[:4]))
    (hm_dir / "images" / "notes.txt").write_text("not a photo of the layout")
    local = ingest(hm_dir, tmp_path / "local")
    remote = ingest(upload_folder(s3, hm_dir, "hm"), tmp_path / "remote")
    pd.testing.assert_frame_equal(read(tmp_path / "local", "items"), read(tmp_path / "remote", "items"))
    assert remote["catalogue"] == local["catalogue"] and content(remote, "image_only") == 4
    assert remote["catalogue"]["photos_ignored_sample"] == ["images/notes.txt"]


def test_sample_without_70_percent_of_its_article_rows_keeps_its_purchases(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if not (SAMPLE / "transactions_train.csv").is_file():
        pytest.skip(f"H&M sample not found at {SAMPLE} (set EM3_HM_SAMPLE); it is not part of the repository")
    root = tmp_path_factory.mktemp("sample_30") / "raw"
    root.mkdir()
    shutil.copytree(SAMPLE / "images", root / "images")  # copies: a link out of the source is refused
    for name in ("customers.csv", "transactions_train.csv"):
        shutil.copy(SAMPLE / name, root / name)
    articles = pd.read_csv(SAMPLE / "articles.csv", dtype=str, keep_default_na=False)
    kept = articles.sample(frac=0.3, random_state=0)
    (root / "articles.csv").write_text(csv_text([list(kept.columns), *kept.values.tolist()]))
    manifest = ingest(root, root.parent / "out", **HM_SPLIT, negatives_per_positive=4)
    raw = pd.read_csv(SAMPLE / "transactions_train.csv", dtype=str)
    distinct = len(raw.drop_duplicates(["t_dat", "customer_id", "article_id"]))
    positives = read(root.parent / "out", "interactions").query("label == 1")
    assert len(positives) >= 0.99 * distinct  # before: about 70 % of them were quarantined
    assert len(positives) == distinct == 8856  # every sample article has a photo: none is lost
    assert (content(manifest, "image_and_text"), content(manifest, "image_only")) == (len(kept), 4109 - len(kept))
    report = run_validate(ValidateConfig(), root.parent / "out")
    assert report["passed"] and report["catalogue"]["missing_fraction"]["text"] == pytest.approx(1 - len(kept) / 4109)
    assert json.loads((root.parent / "out" / "validation" / "report.json").read_text())["passed"]


def test_customer_without_a_row_keeps_its_purchases_with_unknown_attributes(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "customers.csv"
    path.write_text("".join(line for line in path.read_text().splitlines(True) if not line.startswith(CUSTOMERS[2])))
    manifest = ingest(hm_dir, tmp_path / "out")
    assert summary(manifest, "transactions")["rows_quarantined"] == 0  # before: "a valid customer of customers.csv"
    users = read(tmp_path / "out", "users").set_index("user_id")
    assert len(users) == 6 and users.loc[CUSTOMERS[2]].isna().all()  # age NaN, the other attributes null
    bought = read(tmp_path / "out", "interactions").query(f"user_id == '{CUSTOMERS[2]}' and label == 1")
    assert bought["units"].sum() == 7 * 3  # 3 purchase rows a month for 7 months
