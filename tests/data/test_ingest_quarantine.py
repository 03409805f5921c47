"""Ingest on bad input: a bad row is quarantined with its reason (rows in = kept + quarantined), a bad image
leaves its item without the image, and what cannot be read stops the stage with a DataError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from em3.ingest import DataError
from tests.data.conftest import ARTICLES, CUSTOMERS, append, csv_text, ingest, quarantined, read, summary, upload_folder

# -- bad input: one test per kind ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "expectation"),
    [
        (
            ["2020-02-03", CUSTOMERS[0], ARTICLES[0], "-0.01", "1"],
            "price",
            "expect_column_values_to_be_between",
        ),
        (
            ["2020-02-31", CUSTOMERS[0], ARTICLES[0], "0.02", "1"],
            "t_dat",
            "expect_column_values_to_not_be_null",
        ),
        (
            ["2100-02-03", CUSTOMERS[0], ARTICLES[0], "0.02", "1"],
            "t_dat",
            "expect_column_values_to_be_between",
        ),
        (
            ["2020-02-03", CUSTOMERS[0], "0999999999", "0.02", "1"],
            "article_id",
            "expect_column_values_to_be_in_set",
        ),
        (
            ["2020-02-03", CUSTOMERS[0], "10877501x", "0.02", "1"],
            "article_id",
            "expect_column_values_to_match_regex",
        ),
        (
            ["2020-02-03", "f" * 63, ARTICLES[0], "0.02", "1"],
            "customer_id",
            "expect_column_values_to_match_regex",
        ),
        (
            ["2020-02-03", CUSTOMERS[0], ARTICLES[0], "free", "1"],
            "price",
            "expect_column_values_to_be_in_set",
        ),
        (["2020-02-03", CUSTOMERS[0], ARTICLES[0], "inf", "1"], "price", "expect_column_values_to_be_between"),
        (["2020-02-03", CUSTOMERS[0], ARTICLES[0], "1e400", "1"], "price", "expect_column_values_to_be_between"),
    ],
    ids=[
        "negative price",
        "unparseable date",
        "date out of range",
        "unknown article",
        "article id with a letter",
        "bad customer id",
        "non-numeric price",
        "infinite price",
        "price overflowing to infinity",
    ],
)
def test_bad_transaction_is_quarantined_with_its_reason(
    hm_dir: Path, tmp_path: Path, row: list[str], column: str, expectation: str
) -> None:
    append(hm_dir / "transactions_train.csv", row)
    manifest = ingest(hm_dir, tmp_path / "out")
    counts = summary(manifest, "transactions")
    assert (counts["rows_in"], counts["rows_quarantined"]) == (6 * 7 * 3 + 1, 1)
    bad = quarantined(tmp_path / "out", "transactions")
    line = 1 + 6 * 7 * 3 + 1  # the header, the fixture's purchases, then the appended row
    assert bad.drop(columns="reason").values.tolist() == [[line, *row]]
    assert bad.columns[0] == "source_line"
    value = row[["t_dat", "customer_id", "article_id", "price"].index(column)]
    assert bad.loc[0, "reason"].startswith(f"{expectation}({column})")
    assert bad.loc[0, "reason"].endswith(f", got {value!r}"), "the reason says what the value was"
    assert {(f["column"], f["count"], *f["sample"]) for f in counts["failures"]} == {(column, 1, value)}
    rows = read(tmp_path / "out", "interactions")
    assert rows["units"].sum() == 6 * 7 * 3  # the bad row adds no purchase and no negatives


def test_duplicate_article_rows_keep_the_first_and_conflicts_are_told_apart(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "articles.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + lines[1] + lines[2].replace("Item 1", "Item 1 renamed"))
    manifest = ingest(hm_dir, tmp_path / "out")
    counts = summary(manifest, "articles")
    assert (counts["rows_in"], counts["rows_kept"], counts["rows_quarantined"]) == (14, 12, 2)
    bad = quarantined(tmp_path / "out", "articles")
    assert bad["article_id"].tolist() == ARTICLES[:2] and bad["source_line"].tolist() == [14, 15]
    exact, conflict = bad["reason"]
    assert exact.startswith("expect_column_values_to_be_in_set(article_id): not a repeat of an earlier row")
    assert conflict.startswith(
        "expect_column_values_to_be_in_set(article_id): unique: an earlier row has this id "
        "with other values (the first row is kept"
    )
    assert {(f["expect"][:8], f["count"]) for f in counts["failures"]} == {("not a re", 1), ("unique: ", 1)}
    assert read(tmp_path / "out", "items").set_index("item_id").loc[ARTICLES[1], "text"].startswith("Item 1.")


def test_duplicate_purchase_rows_become_units(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "transactions_train.csv"
    append(path, path.read_text().splitlines()[1].split(","))
    manifest = ingest(hm_dir, tmp_path / "out")
    assert summary(manifest, "transactions")["rows_quarantined"] == 0
    rows = read(tmp_path / "out", "interactions")
    first = rows[(rows["user_id"] == CUSTOMERS[0]) & (rows["label"] == 1)].iloc[0]
    assert first["units"] == 3  # bought twice in the fixture, plus the appended copy


def test_overlong_text_is_cut_and_its_purchases_kept(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "articles.csv"
    path.write_text(path.read_text().replace("piece number 5.", "piece number 5." + " long" * 20))
    manifest = ingest(hm_dir, tmp_path / "out", max_text_chars=80)
    texts = summary(manifest, "texts")
    (failure,) = texts["failures"]
    assert (texts["kind"], failure["column"], failure["count"]) == ("modality", "text", 1)
    assert failure["expect"] == "at most 80 characters (else cut to that length)"
    full = "Item 5. Soft, simple piece number 5." + " long" * 20
    bad = quarantined(tmp_path / "out", "texts")  # the text as read, with the reason
    shown = repr(full)[:79] + "…"
    reason = f"expect_column_value_lengths_to_be_between(text): {failure['expect']}, got {shown}"
    assert bad.values.tolist() == [[7, ARTICLES[5], full, reason]]  # article 5 is on line 7
    assert summary(manifest, "articles")["rows_quarantined"] == 0
    assert summary(manifest, "transactions")["rows_quarantined"] == 0  # its purchases stay
    assert read(tmp_path / "out", "items").set_index("item_id").loc[ARTICLES[5], "text"] == full[:80]
    assert (manifest["catalogue"]["texts_cut"], manifest["catalogue"]["texts_cut_to_chars"]) == (1, 80)
    assert ARTICLES[5] in set(read(tmp_path / "out", "interactions")["item_id"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file (0 bytes)"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "not a decodable image"),
    ],
    ids=["zero-byte image", "corrupt JPEG"],
)
def test_bad_image_is_quarantined_and_the_item_kept_without_image(
    hm_dir: Path, tmp_path: Path, content: bytes, problem: str
) -> None:
    (hm_dir / "images" / ARTICLES[3][:3] / f"{ARTICLES[3]}.jpg").write_bytes(content)
    manifest = ingest(hm_dir, tmp_path / "out")
    counts = summary(manifest, "images")
    assert (counts["rows_in"], counts["rows_quarantined"]) == (12, 1)
    bad = quarantined(tmp_path / "out", "images")
    assert bad["item_id"].tolist() == [ARTICLES[3]] and bad.loc[0, "problem"].startswith(problem)
    assert bad.loc[0, "reason"].startswith("expect_column_values_to_be_in_set(image_path)")
    items = read(tmp_path / "out", "items").set_index("item_id")
    assert items.loc[ARTICLES[3], "image_path"] == "" and (items["image_path"] != "").sum() == 11
    assert not (tmp_path / "out" / "images" / ARTICLES[3][:3] / f"{ARTICLES[3]}.jpg").exists()


def test_truncated_jpeg_is_not_decodable(hm_dir: Path, tmp_path: Path) -> None:
    image = hm_dir / "images" / ARTICLES[4][:3] / f"{ARTICLES[4]}.jpg"
    image.write_bytes(image.read_bytes()[:-40])  # Pillow's verify() alone accepts this file
    ingest(hm_dir, tmp_path / "out")
    assert "truncated" in quarantined(tmp_path / "out", "images").loc[0, "problem"].lower()


@pytest.mark.parametrize("remote", [False, True], ids=["local", "s3"])
def test_image_problem_names_the_source_file(
    hm_dir: Path, tmp_path: Path, request: pytest.FixtureRequest, remote: bool
) -> None:
    """Not the staging or download folder ingest checked the copy in: that folder is gone after the run."""
    rel = f"images/{ARTICLES[3][:3]}/{ARTICLES[3]}.jpg"
    (hm_dir / rel).write_bytes(b"a text file named .jpg")
    source = upload_folder(request.getfixturevalue("s3"), hm_dir, "hm") if remote else str(hm_dir)
    manifest = ingest(source, tmp_path / "out")
    bad = quarantined(tmp_path / "out", "images")
    assert bad[["item_id", "image_path"]].values.tolist() == [[ARTICLES[3], rel]]
    assert bad.loc[0, "problem"] == (
        f"not a decodable image (UnidentifiedImageError: cannot identify image file '{source}/{rel}')"
    )
    assert summary(manifest, "images")["failures"][0]["sample"] == [rel]


def test_image_path_traversal_is_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"not for you")
    (root / "items.csv").write_text(
        csv_text(
            [
                ["item_id", "text", "image_path"],
                ["a", "A dress", "../secret.jpg"],
                ["b", "A shirt", "/etc/passwd"],
                ["c", "A hat", ""],
            ]
        )
    )
    (root / "impressions.csv").write_text(
        csv_text(
            [
                ["user_id", "item_id", "ts", "label"],
                ["u1", "c", "2020-01-02", "1"],
                ["u1", "a", "2020-01-02", "0"],
            ]
        )
    )
    manifest = ingest(root, tmp_path / "out", format="native")
    bad = quarantined(tmp_path / "out", "items")
    assert bad["item_id"].tolist() == ["a", "b"]
    assert bad["reason"].str.startswith("expect_column_values_to_not_match_regex(image_path)").all()
    assert summary(manifest, "impressions")["rows_quarantined"] == 1  # the impression of item a
    assert not list((tmp_path / "out").rglob("secret.jpg")) and not list((tmp_path / "out").rglob("passwd"))


def test_native_log_name_with_traversal_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ingest.native_log: '\.\./impressions.csv' is not a relative path"):
        ingest(tmp_path, tmp_path / "out", format="native", native_log="../impressions.csv")


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "customers.csv",
            lambda t: t.replace(",age,", ",years,", 1),
            r"customers.csv: missing column\(s\) \['age'\]",
        ),
        (
            "transactions_train.csv",
            lambda t: t.replace("\n", ",x\n"),
            r"transactions_train.csv: unexpected column\(s\) \['x'\]",
        ),
        (
            "transactions_train.csv",
            lambda t: t.replace(",", ";"),
            r"transactions_train.csv: .*wrong delimiter",
        ),
        (
            "articles.csv",
            lambda t: t[: t.rindex("Soft") + 2],  # cut inside the quoted "Soft, simple ..." of the last row
            r"articles.csv: the row starting at line 13 has a quoted field that is never closed \(the file ends "
            r"at line 13\): the file looks truncated",
        ),
        (
            "transactions_train.csv",
            lambda t: t[: t.rindex(",0.0254")],
            r"transactions_train.csv: 1 row\(s\) do not "
            r"have the 5 fields.*row 127 has 3 fields",
        ),
        (
            "transactions_train.csv",
            lambda t: t.splitlines()[0] + "\n",
            r"transactions_train.csv: no data rows",
        ),
        ("customers.csv", lambda t: "", r"customers.csv: empty file \(0 bytes\)"),
    ],
    ids=[
        "missing column",
        "extra column",
        "wrong delimiter",
        "truncated in a quoted field",
        "truncated row",
        "empty dataset",
        "zero-byte file",
    ],
)
def test_structural_problem_is_a_data_error_naming_the_file(
    hm_dir: Path, tmp_path: Path, file: str, edit, message: str
) -> None:
    path = hm_dir / file
    path.write_text(edit(path.read_text()))
    with pytest.raises(DataError, match=message):
        ingest(hm_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_utf8_text_is_a_data_error_naming_the_line(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "articles.csv"
    path.write_bytes(path.read_bytes().replace(b"Item 4", b"Item \xe9 4"))  # Latin-1 e-acute
    with pytest.raises(DataError, match=r"articles.csv: line 6 \(byte \d+ of the line: b'\\xe9 4,'\) is not UTF-8"):
        ingest(hm_dir, tmp_path / "out")


def test_missing_source_file_is_a_data_error(hm_dir: Path, tmp_path: Path) -> None:
    (hm_dir / "customers.csv").unlink()
    with pytest.raises(DataError, match=r"raw/customers.csv: file not found; expected a table with columns"):
        ingest(hm_dir, tmp_path / "out")
    with pytest.raises(DataError, match="source folder not found"):
        ingest(tmp_path / "nowhere", tmp_path / "out")


def test_no_purchase_left_is_one_error_line_with_the_quarantine_written(hm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest(hm_dir, out)
    before = read(out, "interactions")
    path = hm_dir / "transactions_train.csv"
    path.write_text(path.read_text().replace(",0.0254,", ",-1,"))
    with pytest.raises(DataError) as failure:
        ingest(hm_dir, out)
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"{hm_dir}: no purchases left after the checks: all 126 rows")
    assert "126 rows fail expect_column_values_to_be_between(price): non-negative and finite" in message
    rejected = tmp_path / "out.rejected"
    assert f"rows and reasons in {rejected / 'quarantine'}, {out} left as it was" in message
    bad = quarantined(rejected, "transactions")
    assert len(bad) == 126 and bad["reason"].str.contains("(price)", regex=False).all()
    assert json.loads((rejected / "manifest.json").read_text())["rejected"] == message
    pd.testing.assert_frame_equal(read(out, "interactions"), before)  # the previous output is intact
    path.write_text(path.read_text().replace(",-1,", ",0.0254,"))
    ingest(hm_dir, out)
    assert not rejected.exists()  # a successful run removes the stale record
