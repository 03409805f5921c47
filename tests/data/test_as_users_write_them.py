"""Values as users' tools write them (issue 21): ids without their leading zeros, dates with a time, unknown prices,
conflicting duplicate rows and UTF-16 files. Each is taken as meant and counted, or refused with a reason that says
what the value was and what was expected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from em3.validation import DataError
from tests.data.conftest import ARTICLES, CUSTOMERS, append, ingest, quarantined, read, summary

PURCHASES = 6 * 7 * 3  # rows of transactions_train.csv in the tiny layout


def purchases(out: Path) -> pd.DataFrame:
    return read(out, "interactions").query("label == 1").reset_index(drop=True)


def test_ids_without_their_leading_zero_are_the_same_items(hm_dir: Path, tmp_path: Path):
    """A pandas round trip (ids read as integers, written back) and a spreadsheet's 9-digit ids keep every purchase:
    the ids are padded back to 10 digits and counted."""
    reference = purchases(tmp_path / "ref") if ingest(hm_dir, tmp_path / "ref") else None
    for name in ("transactions_train.csv", "articles.csv"):
        pd.read_csv(hm_dir / name).to_csv(hm_dir / name, index=False)  # article_id: int64, e.g. 108775015
    first_id = (hm_dir / "transactions_train.csv").read_text().splitlines()[1].split(",")[2]
    assert len(first_id) == 9 and "0" + first_id in ARTICLES
    manifest = ingest(hm_dir, tmp_path / "out")
    assert manifest["ids_padded"] == {"articles.csv": len(ARTICLES), "transactions_train.csv": PURCHASES}
    assert summary(manifest, "transactions")["rows_quarantined"] == 0
    assert summary(manifest, "articles")["rows_quarantined"] == 0
    pd.testing.assert_frame_equal(purchases(tmp_path / "out"), reference)


def test_a_padded_id_that_is_still_unknown_is_quarantined_as_read(hm_dir: Path, tmp_path: Path):
    append(hm_dir / "transactions_train.csv", ["2020-02-03", CUSTOMERS[0], "999999999", "0.02", "1"])
    manifest = ingest(hm_dir, tmp_path / "out")
    assert manifest["ids_padded"]["transactions_train.csv"] == 1
    bad = quarantined(tmp_path / "out", "transactions")
    assert bad["article_id"].tolist() == ["999999999"], "the quarantine keeps the value as read"
    assert bad["reason"].str.startswith("expect_column_values_to_be_in_set(article_id): an item").all()


def test_a_day_with_a_time_is_that_day(hm_dir: Path, tmp_path: Path):
    reference = purchases(tmp_path / "ref") if ingest(hm_dir, tmp_path / "ref") else None
    path = hm_dir / "transactions_train.csv"
    header, *rows = path.read_text().splitlines()
    timed = [
        row.replace(",", " 00:00:00,", 1) if n % 2 else row.replace(",", "T23:59:59+02:00,", 1)
        for n, row in enumerate(rows[:10])
    ]
    path.write_text("\n".join([header, *timed, *rows[10:]]) + "\n")
    manifest = ingest(hm_dir, tmp_path / "out")
    assert manifest["dates_with_time"] == {"transactions_train.csv": 10}
    assert summary(manifest, "transactions")["rows_quarantined"] == 0
    pd.testing.assert_frame_equal(purchases(tmp_path / "out"), reference)


def test_a_bad_date_says_what_it_was(hm_dir: Path, tmp_path: Path):
    append(hm_dir / "transactions_train.csv", ["20.09.2020", CUSTOMERS[0], ARTICLES[0], "0.01", "1"])
    ingest(hm_dir, tmp_path / "out")
    (reason,) = quarantined(tmp_path / "out", "transactions")["reason"]
    assert reason == (
        "expect_column_values_to_not_be_null(t_dat): a date YYYY-MM-DD (a time of day after it is "
        "ignored), got '20.09.2020'"
    )


def test_an_unknown_price_keeps_the_purchase_and_a_bad_one_does_not(hm_dir: Path, tmp_path: Path):
    day = "2020-07-28"
    for n, price in enumerate(["", "NaN", "nan", "-1", "inf", "ten"]):
        append(hm_dir / "transactions_train.csv", [day, CUSTOMERS[n], ARTICLES[n], price, "1"])
    manifest = ingest(hm_dir, tmp_path / "out")
    assert manifest["prices_unknown"] == 3
    bad = quarantined(tmp_path / "out", "transactions")
    assert bad["price"].tolist() == ["-1", "inf", "ten"]
    assert bad["reason"].str.endswith(("got '-1'", "got 'inf'", "got 'ten'")).all()
    kept = purchases(tmp_path / "out").query("ts == @pd.Timestamp(@day)")
    assert set(kept["user_id"]) >= set(CUSTOMERS[:3])


def test_conflicting_duplicate_customers_get_their_own_reason(hm_dir: Path, tmp_path: Path):
    path = hm_dir / "customers.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1], lines[2].replace(",ACTIVE,", ",PRE-CREATE,")]) + "\n")
    manifest = ingest(hm_dir, tmp_path / "out")
    bad = quarantined(tmp_path / "out", "customers")
    assert bad["customer_id"].tolist() == CUSTOMERS[:2] and bad["source_line"].tolist() == [8, 9]
    assert "not a repeat of an earlier row" in bad["reason"][0] and "other values" in bad["reason"][1]
    failures = {f["expect"].split(" (")[0]: f["count"] for f in summary(manifest, "customers")["failures"]}
    assert failures == {"not a repeat of an earlier row": 1, "unique: an earlier row has this id with other values": 1}
    users = read(tmp_path / "out", "users").set_index("user_id")
    assert users.loc[CUSTOMERS[1], "club_member_status"] == "ACTIVE", "the first row is kept"


def test_quarantined_rows_carry_their_source_line_through_multiline_values(hm_dir: Path, tmp_path: Path):
    path = hm_dir / "articles.csv"
    assert '"Soft, simple piece number 3."' in path.read_text()  # quoted: it holds a comma
    text = path.read_text().replace("Soft, simple piece number 3.", "Soft,\nsimple\npiece number 3.", 1)
    path.write_text(text + "bad id,1,A,Dress,Red,Plain.\n")
    ingest(hm_dir, tmp_path / "out")
    bad = quarantined(tmp_path / "out", "articles")
    assert bad["source_line"].tolist() == [len(path.read_text().splitlines())]  # the last line, after 2 breaks


def test_a_utf16_file_is_named_as_utf16(hm_dir: Path, tmp_path: Path):
    path = hm_dir / "articles.csv"
    path.write_bytes(path.read_text().encode("utf-16"))
    with pytest.raises(DataError, match=r"articles.csv: UTF-16 text .*; expected UTF-8"):
        ingest(hm_dir, tmp_path / "out")
