"""Bad input not covered in test_ingest.py (which has the rest, one test per kind): a PNG named .jpg, a 1 MB
description, a row longer than a CSV block, path traversal in an S3 image key, and the CLI reporting bad input
without a traceback. Each ends quarantined with a reason, or as an error naming the file, row or column."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
import yaml
from PIL import Image

from em3.cli import main
from tests.data.conftest import ARTICLES, HM_SPLIT, csv_text, ingest, read
from tests.data.test_ingest import quarantined, summary

PURCHASES = 6 * 7 * 3  # rows of transactions_train.csv in the tiny layout


def test_png_named_jpg_is_quarantined_and_the_item_kept_without_image(hm_dir: Path, tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(png, format="PNG")
    (hm_dir / "images" / ARTICLES[2][:3] / f"{ARTICLES[2]}.jpg").write_bytes(png.getvalue())
    manifest = ingest(hm_dir, tmp_path / "out")
    counts = summary(manifest, "images")
    assert (counts["rows_in"], counts["rows_kept"], counts["rows_quarantined"]) == (12, 11, 1)
    bad = quarantined(tmp_path / "out", "images")
    assert bad["item_id"].tolist() == [ARTICLES[2]]
    assert bad.loc[0, "problem"] == "PNG data in a .jpg file (expected JPEG): the format does not match the name"
    assert bad.loc[0, "reason"].startswith("expect_column_values_to_be_in_set(image_path): an image file that exists")
    items = read(tmp_path / "out", "items").set_index("item_id")
    assert items.loc[ARTICLES[2], "image_path"] == "" and len(items) == 12  # the item stays, without image
    assert ARTICLES[2] in set(read(tmp_path / "out", "interactions")["item_id"])


@pytest.mark.parametrize("megabytes", [1, 3], ids=["1 MB", "3 MB: longer than pyarrow's default CSV block"])
def test_huge_description_is_quarantined_with_its_purchases(hm_dir: Path, tmp_path: Path, megabytes: int) -> None:
    path = hm_dir / "articles.csv"
    huge = "Endless" + " words" * (megabytes * 2**20 // 6)  # no comma: an unquoted field
    path.write_text(path.read_text().replace("Soft, simple piece number 7.", huge))
    manifest = ingest(hm_dir, tmp_path / "out")
    articles = summary(manifest, "articles")
    (failure,) = articles["failures"]
    assert (articles["rows_in"], articles["rows_quarantined"]) == (12, 1)
    assert (failure["column"], failure["count"], failure["expect"]) == ("text", 1, "prod_name + detail_desc: 1 to 5000 "
                                                                                   "characters")  # fmt: skip
    bad = quarantined(tmp_path / "out", "articles")
    assert bad["article_id"].tolist() == [ARTICLES[7]] and len(bad.loc[0, "detail_desc"]) == len(huge)
    transactions = summary(manifest, "transactions")
    sold = sum(ARTICLES[7] in line for line in (hm_dir / "transactions_train.csv").read_text().splitlines())
    assert (transactions["rows_in"], transactions["rows_quarantined"]) == (PURCHASES, sold) and sold > 0
    assert ARTICLES[7] not in set(read(tmp_path / "out", "items")["item_id"])
    assert read(tmp_path / "out", "interactions").query("label == 1")["units"].sum() == PURCHASES - sold


def test_image_key_traversal_on_s3_is_quarantined(s3, tmp_path: Path) -> None:
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="private/secret.jpg", Body=b"outside the source prefix")
    items = csv_text([["item_id", "text", "image_path"], ["a", "A dress", "../private/secret.jpg"],
                      ["b", "A shirt", "pics/../../private/secret.jpg"], ["c", "A hat", ""]])  # fmt: skip
    log = csv_text([["user_id", "item_id", "ts", "label"], ["u1", "c", "2020-01-02", "1"],
                    ["u1", "a", "2020-01-02", "0"], ["u2", "b", "2020-07-02", "1"]])  # fmt: skip
    s3.put_object(Bucket=bucket, Key="native/items.csv", Body=items.encode())
    s3.put_object(Bucket=bucket, Key="native/impressions.csv", Body=log.encode())
    manifest = ingest(f"s3://{bucket}/native", tmp_path / "out", format="native")
    bad = quarantined(tmp_path / "out", "items")
    assert bad["item_id"].tolist() == ["a", "b"]
    assert bad["reason"].str.startswith("expect_column_values_to_not_match_regex(image_path)").all()
    counts = summary(manifest, "impressions")
    assert (counts["rows_in"], counts["rows_kept"], counts["rows_quarantined"]) == (3, 1, 2)
    assert not list((tmp_path / "out").rglob("secret.jpg"))


def test_cli_prints_a_bad_file_as_one_error_line(hm_dir: Path, tmp_path: Path, capsys) -> None:
    path = hm_dir / "transactions_train.csv"
    path.write_text(path.read_text().replace(",", "\t"))
    config = write_config(tmp_path, hm_dir)
    assert main(["ingest", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"em3 ingest: error: {path}: the header is one column")
    assert "wrong delimiter?" in error and "Traceback" not in error and error.count("\n") == 1
    assert not (tmp_path / "tables").exists()


def test_cli_names_a_typo_in_the_ingest_config(hm_dir: Path, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, hm_dir, negatives=3)  # the key is negatives_per_positive
    assert main(["ingest", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "unknown key 'ingest.negatives'" in error and str(config) in error and "Traceback" not in error


def test_cli_quarantines_bad_rows_and_reports_the_counts(hm_dir: Path, tmp_path: Path, capsys) -> None:
    path = hm_dir / "transactions_train.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1].replace(",0.0254,", ",-3,") + "".join(lines[2:]))
    assert main(["ingest", "--config", str(write_config(tmp_path, hm_dir))]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"]["items"] == 12
    bad = quarantined(tmp_path / "tables", "transactions")
    assert bad["price"].tolist() == ["-3"] and bad.loc[0, "reason"].startswith("expect_column_values_to_be_between")


def write_config(tmp_path: Path, source: Path, **ingest_values) -> Path:
    config = tmp_path / "ingest.yaml"
    values = {"ingest": {"source": str(source), **HM_SPLIT, **ingest_values},
              "data": {"tables_dir": str(tmp_path / "tables")}}  # fmt: skip
    config.write_text(yaml.safe_dump(values))
    return config
