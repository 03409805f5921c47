"""Bad input not covered in test_ingest.py (which has the rest, one test per kind): a PNG named .jpg, a 1 MB
description, a row longer than a CSV block, a bare quote inside a value, path traversal in an S3 image key, and
the CLI reporting bad input without a traceback. Each ends accepted as what it is, masked or quarantined with a
reason, or as an error naming the file, row or column."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
import yaml
from PIL import Image

from em3.cli import main
from em3.config import ValidateConfig
from em3.validation import run_validate
from tests.data.conftest import ARTICLES, HM_SPLIT, csv_text, ingest, quarantined, read, summary

PURCHASES = 6 * 7 * 3  # rows of transactions_train.csv in the tiny layout


def test_png_named_jpg_is_accepted_and_its_real_format_recorded(hm_dir: Path, tmp_path: Path) -> None:
    png = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(png, format="PNG")
    (hm_dir / "images" / ARTICLES[2][:3] / f"{ARTICLES[2]}.jpg").write_bytes(png.getvalue())
    manifest = ingest(hm_dir, tmp_path / "out")
    counts = summary(manifest, "images")
    assert (counts["rows_in"], counts["rows_kept"], counts["rows_quarantined"]) == (12, 12, 0)
    images = manifest["images"]
    assert images["formats"] == {"JPEG": 11, "PNG": 1} and images["format_differs_from_name"] == 1
    assert images["format_differs_from_name_sample"] == [
        {"image_path": f"images/{ARTICLES[2][:3]}/{ARTICLES[2]}.jpg", "format": "PNG"}
    ]
    items = read(tmp_path / "out", "items").set_index("item_id")
    assert (tmp_path / "out" / items.loc[ARTICLES[2], "image_path"]).read_bytes() == png.getvalue()
    assert run_validate(ValidateConfig(), tmp_path / "out")["passed"]  # validate decodes it too


@pytest.mark.parametrize("megabytes", [1, 3], ids=["1 MB", "3 MB: longer than pyarrow's default CSV block"])
def test_huge_description_is_cut_and_its_purchases_kept(hm_dir: Path, tmp_path: Path, megabytes: int) -> None:
    path = hm_dir / "articles.csv"
    huge = "Endless" + " words" * (megabytes * 2**20 // 6)  # no comma: an unquoted field
    path.write_text(path.read_text().replace("Soft, simple piece number 7.", huge))
    manifest = ingest(hm_dir, tmp_path / "out")
    texts = summary(manifest, "texts")
    (failure,) = texts["failures"]
    assert (texts["rows_in"], texts["rows_quarantined"], failure["count"]) == (12, 1, 1)
    assert failure["expect"] == "at most 5000 characters (else cut to that length)"
    bad = quarantined(tmp_path / "out", "texts")
    assert bad["item_id"].tolist() == [ARTICLES[7]] and bad.loc[0, "text"] == f"Item 7. {huge}"  # as read
    assert (
        summary(manifest, "articles")["rows_quarantined"] == summary(manifest, "transactions")["rows_quarantined"] == 0
    )
    text = read(tmp_path / "out", "items").set_index("item_id").loc[ARTICLES[7], "text"]
    assert text == f"Item 7. {huge}"[:5000]
    assert read(tmp_path / "out", "interactions").query("label == 1")["units"].sum() == PURCHASES


def test_bare_quote_inside_an_unquoted_field_is_an_ordinary_character(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "articles.csv"
    text = path.read_text()
    assert text.count('"') % 2 == 0 and "\n0108775018,0108775,Item 3," in text
    path.write_text(text.replace(",Item 3,", ',Jeans with a 32" leg,'))  # one quote: the old check refused the file
    manifest = ingest(hm_dir, tmp_path / "out")
    assert summary(manifest, "articles")["rows_kept"] == 12
    items = read(tmp_path / "out", "items").set_index("item_id")
    assert items.loc[ARTICLES[3], "text"] == 'Jeans with a 32" leg. Soft, simple piece number 3.'
    assert items.loc[ARTICLES[4], "text"] == "Item 4. Soft, simple piece number 4."  # the quote did not swallow


def test_image_key_traversal_on_s3_is_quarantined(s3, tmp_path: Path) -> None:
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="private/secret.jpg", Body=b"outside the source prefix")
    items = csv_text(
        [
            ["item_id", "text", "image_path"],
            ["a", "A dress", "../private/secret.jpg"],
            ["b", "A shirt", "pics/../../private/secret.jpg"],
            ["c", "A hat", ""],
        ]
    )
    log = csv_text(
        [
            ["user_id", "item_id", "ts", "label"],
            ["u1", "c", "2020-01-02", "1"],
            ["u1", "a", "2020-01-02", "0"],
            ["u2", "b", "2020-07-02", "1"],
        ]
    )
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
    values = {
        "ingest": {"source": str(source), **HM_SPLIT, **ingest_values},
        "data": {"tables_dir": str(tmp_path / "tables")},
    }
    config.write_text(yaml.safe_dump(values))
    return config
