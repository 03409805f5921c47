"""The validate stage and the check engine: canonical suites, quarantine with reasons, threshold, report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from em3.config import ConfigError, IngestConfig, ValidateConfig, parse_config
from em3.validation import DataError, batches, run_validate
from em3.validation.contract import interaction_files, resolve_split_dates
from em3.validation.engine import Rule, check_table
from tests.data.conftest import ARTICLES, ingest, read, rewrite_interactions


@pytest.fixture
def data_dir(hm_dir: Path, tmp_path: Path) -> Path:
    ingest(hm_dir, tmp_path / "data")
    return tmp_path / "data"


def table(report: dict, stage: str, name: str) -> dict:
    (found,) = [t for t in report["tables"] if (t["stage"], t["table"]) == (stage, name)]
    assert found["rows_in"] == found["rows_kept"] + found["rows_quarantined"]
    return found


def test_clean_data_passes_and_writes_the_report(data_dir: Path) -> None:
    report = run_validate(ValidateConfig(), data_dir)
    assert report["passed"]
    assert [(t["stage"], t["table"]) for t in report["tables"]] == [
        ("ingest", "articles"),
        ("ingest", "texts"),
        ("ingest", "customers"),
        ("ingest", "transactions"),
        ("ingest", "images"),
        ("validate", "interactions"),
        ("validate", "items"),
        ("validate", "users"),
    ]
    assert all(t["rows_quarantined"] == 0 for t in report["tables"])
    assert {t["table"]: t["kind"] for t in report["tables"] if t["kind"] != "rows"} == {
        "texts": "modality",
        "images": "modality",
    }
    assert report["catalogue"]["by_content"]["image_and_text"]["items"] == 12
    assert table(report, "validate", "interactions")["rows_in"] == len(read(data_dir, "interactions"))
    assert json.loads((data_dir / "validation" / "report.json").read_text()) == report
    assert (data_dir / "validation" / "report.md").read_text().startswith("# Data validation: PASSED")
    html = (data_dir / "validation" / "report.html").read_text()
    assert "<h1>Data validation: PASSED</h1>" in html and "<td>transactions</td>" in html
    assert "<h2>Drift of the new days against the days before them</h2>" in html
    assert not (data_dir / "validation" / "quarantine").exists()
    elsewhere = data_dir.parent / "reports" / "validation"
    assert run_validate(ValidateConfig(), data_dir, elsewhere) == report
    assert (elsewhere / "report.md").read_text() == (data_dir / "validation" / "report.md").read_text()


def test_sample_passes(sample_out: Path) -> None:
    report = run_validate(ValidateConfig(), sample_out)
    assert report["passed"]
    assert table(report, "validate", "items")["rows_kept"] == 4109
    assert table(report, "validate", "interactions")["rows_kept"] == 5 * 8856


def test_too_many_bad_rows_fail_with_a_readable_report(hm_dir: Path, tmp_path: Path) -> None:
    path = hm_dir / "transactions_train.csv"
    lines = path.read_text().splitlines(keepends=True)
    bad = [line.replace(",0.0254,", ",-1,") for line in lines[1:11]]
    path.write_text("".join(lines[:1] + bad + lines[11:]))
    ingest(hm_dir, tmp_path / "data")  # bad rows never stop ingest
    with pytest.raises(DataError) as failure:
        run_validate(ValidateConfig(), tmp_path / "data")
    message = str(failure.value)
    assert message.startswith("data validation failed: ingest/transactions quarantined 7.94% of its rows (limit 5.00%)")
    row = "| expect_column_values_to_be_between | price | non-negative and finite (or unknown) | 10 | '-1' |"
    assert row in message
    assert "| ingest | transactions | rows | 126 | 116 | 10 | 7.94% | 5.00% | FAILED |" in message
    report = json.loads((tmp_path / "data" / "validation" / "report.json").read_text())
    assert not report["passed"] and table(report, "ingest", "transactions")["rows_quarantined"] == 10
    assert run_validate(ValidateConfig(max_bad_fraction=0.08), tmp_path / "data")["passed"]
    per_table = ValidateConfig(table_max_bad_fraction={"transactions": 0.08})  # the others keep 5 %
    assert table(run_validate(per_table, tmp_path / "data"), "ingest", "transactions")["limit"] == 0.08


def test_canonical_violations_are_quarantined_with_reasons(data_dir: Path) -> None:
    rows = read(data_dir, "interactions")
    rows.loc[0, "label"] = 2
    rows.loc[1, "item_id"] = "0000000000"
    rewrite_interactions(data_dir, pd.concat([rows, rows.iloc[[5]]], ignore_index=True))
    items = read(data_dir, "items")
    (data_dir / items.loc[7, "image_path"]).write_bytes(b"")
    (data_dir / items.loc[8, "image_path"]).write_bytes((data_dir / items.loc[9, "image_path"]).read_bytes())
    report = run_validate(ValidateConfig(max_bad_fraction=1.0), data_dir)
    counts = table(report, "validate", "interactions")
    assert (counts["rows_in"], counts["rows_quarantined"]) == (len(rows) + 1, 3)
    bad = pd.read_parquet(data_dir / "validation" / "quarantine" / "interactions.parquet")
    assert bad["reason"].str.replace(r", got .*", "", regex=True).tolist() == [
        "expect_column_values_to_be_in_set(label): 0 or 1",
        "expect_column_values_to_be_in_set(item_id): an item of items.parquet",
        "expect_column_values_to_be_in_set(user_id): one row per (user_id, item_id, ts)",
    ]
    assert bad["reason"].str.extract(r", got (.*)$")[0].tolist()[:2] == ["2", "'0000000000'"]
    assert bad["label"].tolist()[0] == 2 and bad["item_id"].tolist()[1] == "0000000000"
    image = pd.read_parquet(data_dir / "validation" / "quarantine" / "items.parquet")
    assert image["item_id"].tolist() == [ARTICLES[7]] and "image_path" in image.loc[0, "reason"]  # 8: changed, valid


def test_rows_on_another_day_than_their_partition_and_repeats_across_days_are_quarantined(data_dir: Path) -> None:
    """The cross-day rules: a row must lie on the day of its partition (so histories built from earlier days stay
    earlier), and one row per (user, item, ts) holds over every partition."""
    files = interaction_files(data_dir)
    first, second = list(files)[:2]
    moved = pd.read_parquet(files[first]).iloc[[0]]
    day = pd.read_parquet(files[second])
    pd.concat([day, moved], ignore_index=True).to_parquet(files[second])  # first's row, again, in second's file
    report = run_validate(ValidateConfig(max_bad_fraction=1.0), data_dir)
    bad = pd.read_parquet(data_dir / "validation" / "quarantine" / "interactions.parquet")
    assert table(report, "validate", "interactions")["rows_quarantined"] == len(bad) == 1
    assert "on the day of its partition" in bad.loc[0, "reason"] and "one row per" in bad.loc[0, "reason"]
    assert bad.loc[0, "user_id"] == moved.iloc[0]["user_id"]


def test_a_log_checked_in_batches_gives_the_report_and_quarantine_of_one_batch(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validate reads the interactions in row batches (memory bounded by the batch): with batches of 4 rows, a
    repeated key that spans batches and failures in several batches are found and counted as in one pass."""
    rows = read(data_dir, "interactions")
    rows.loc[[0, 9], "label"] = 2
    rows.loc[6, "item_id"] = "0000000000"
    repeats = rows.iloc[[1, 5, 5]]  # key of row 1 once more, of row 5 twice more, in later batches
    rewrite_interactions(data_dir, pd.concat([rows, repeats], ignore_index=True))
    reports, quarantines = [], []
    for batch_rows in (len(rows) + 3, 4):
        monkeypatch.setattr(batches, "BATCH_ROWS", batch_rows)
        reports.append(table(run_validate(ValidateConfig(max_bad_fraction=1.0), data_dir), "validate", "interactions"))
        quarantines.append(pd.read_parquet(data_dir / "validation" / "quarantine" / "interactions.parquet"))
    assert reports[0] == reports[1] and reports[0]["rows_quarantined"] == 6
    failures = {(f["column"], f["count"]) for f in reports[1]["failures"]}
    assert failures == {("label", 2), ("item_id", 1), ("user_id", 3)}
    pd.testing.assert_frame_equal(quarantines[0], quarantines[1])
    assert quarantines[1]["reason"].str.contains("one row per").sum() == 3


def test_rerun_replaces_the_previous_report(data_dir: Path) -> None:
    (data_dir / "validation").mkdir()
    (data_dir / "validation" / "report.json").write_text("{}")
    (data_dir / "validation" / "old.parquet").write_text("stale")
    run_validate(ValidateConfig(), data_dir)
    assert sorted(p.name for p in (data_dir / "validation").iterdir()) == ["report.html", "report.json", "report.md"]


def test_missing_inputs_are_data_errors(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "users.parquet").unlink()
    with pytest.raises(DataError, match=r"users.parquet: not found; expected the users table"):
        run_validate(ValidateConfig(), data_dir)
    with pytest.raises(DataError, match=r"manifest.json: not found; expected the output of `em3 ingest`"):
        run_validate(ValidateConfig(), tmp_path / "nothing")


def test_check_table_joins_reasons_and_reconciles() -> None:
    rows = pd.DataFrame({"id": ["1", "x", "3", "3"], "price": ["1.5", "-2", "oops", "4"]}, index=[10, 11, 12, 13])
    checked = rows.assign(price=pd.to_numeric(rows["price"], errors="coerce"), id_repeated=rows["id"].duplicated())
    result = check_table(
        "t",
        rows,
        checked,
        [
            Rule("id", "digits", "expect_column_values_to_match_regex", {"regex": r"^\d+$"}),
            Rule("id", "unique", "expect_column_values_to_be_in_set", {"value_set": [False]}, on="id_repeated"),
            Rule("price", "a number", "expect_column_values_to_not_be_null"),
            Rule("price", "non-negative", "expect_column_values_to_be_between", {"min_value": 0}),
        ],
    )
    assert result.kept.index.tolist() == [10] and result.quarantine.index.tolist() == [11, 12, 13]
    assert result.quarantine["price"].tolist() == ["-2", "oops", "4"]  # original values, not parsed ones
    assert result.quarantine.loc[11, "reason"] == (
        "expect_column_values_to_match_regex(id): digits, got 'x'; "
        "expect_column_values_to_be_between(price): non-negative, got '-2'"
    )
    assert result.quarantine.loc[13, "reason"] == "expect_column_values_to_be_in_set(id): unique, got '3'"
    assert result.summary["rows_in"] == 4 and result.summary["rows_kept"] + result.summary["rows_quarantined"] == 4
    assert [f["sample"] for f in result.summary["failures"]] == [["x"], ["3"], ["oops"], ["-2"]]
    with pytest.raises(ValueError, match="share one unique index"):
        check_table("t", rows, checked.reset_index(drop=True), [])


def test_config_sections_are_strict() -> None:
    assert parse_config({}).ingest == IngestConfig() and parse_config({}).validation.max_bad_fraction == 0.05
    with pytest.raises(ConfigError, match="unknown key 'ingest.negatives'"):
        parse_config({"ingest": {"negatives": 3}})
    with pytest.raises(ConfigError, match="valid_start < test_start"):
        parse_config({"ingest": {"valid_start": "2020-07-01", "test_start": "2020-06-01"}})
    with pytest.raises(ConfigError, match="validation.max_bad_fraction"):
        parse_config({"validation": {"max_bad_fraction": 1.5}})


def test_unset_split_dates_fall_at_70_and_85_percent_of_the_log() -> None:
    ts = pd.Series(pd.date_range("2020-01-01", "2020-01-21", freq="D"))
    resolved = resolve_split_dates(IngestConfig(), ts)
    assert (str(resolved.valid_start), str(resolved.test_start)) == ("2020-01-15", "2020-01-18")
    fixed = IngestConfig(valid_start="2020-01-05", test_start="2020-01-10")
    assert resolve_split_dates(fixed, ts) == fixed
