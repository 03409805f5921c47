"""The native impression format on the cases of issue 11 §4: no image_path column, photos found by item id, a
log from the 1990s, user attributes kept, and a log the checks empty entirely (one error line, quarantine kept)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from em3.cli import main
from em3.config import ValidateConfig
from em3.ingest import native
from em3.validation import DataError, run_validate
from tests.data.conftest import csv_text, ingest, quarantined, read, summary

NATIVE = {"format": "native", "valid_start": None, "test_start": None}


def write_native(root: Path, items: list[list[str]], log: list[list[str]], users: list[list[str]] | None = None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "items.csv").write_text(csv_text(items))
    (root / "impressions.csv").write_text(csv_text([["user_id", "item_id", "ts", "label"], *log]))
    if users is not None:
        (root / "users.csv").write_text(csv_text(users))
    return root


def nineties_log(days: int = 20) -> list[list[str]]:
    """Two users, three items, one impression per user and day from 1997-09-20 on, times of day included."""
    start = pd.Timestamp("1997-09-20 08:30:00")
    return [
        [user, "i" + str((d + u) % 3), (start + pd.Timedelta(days=d, hours=u)).isoformat(), str((d + u) % 2)]
        for d in range(days)
        for u, user in enumerate(["u1", "u2"])
    ]


TEXT_ONLY = [
    ["item_id", "text", "genre"],
    ["i0", "Toy Story (1995)", "Animation"],
    ["i1", "GoldenEye", "Action"],
    ["i2", "Four Rooms", "Thriller"],
]


def test_items_file_without_image_path_and_a_log_from_1997_ingest_with_the_defaults(tmp_path: Path) -> None:
    root = write_native(tmp_path / "raw", TEXT_ONLY, nineties_log())
    manifest = ingest(root, tmp_path / "out", **NATIVE)  # before: a missing column, then every row quarantined
    assert summary(manifest, "impressions")["rows_quarantined"] == 0 and manifest["rows"]["interactions"] == 40
    params = manifest["params"]
    assert params["min_date"] is None and (params["valid_start"], params["test_start"]) == ("1997-10-03", "1997-10-06")
    items = read(tmp_path / "out", "items")
    assert items["image_path"].tolist() == ["", "", ""] and items["genre"].tolist() == [
        "Animation",
        "Action",
        "Thriller",
    ]
    assert manifest["catalogue"]["by_content"]["text_only"]["items"] == 3 and manifest["images"]["copied"] == 0
    assert run_validate(ValidateConfig(), tmp_path / "out")["passed"]


def test_item_without_any_content_keeps_its_impressions_with_an_id_only(tmp_path: Path) -> None:
    items = [*TEXT_ONLY[:3], ["i2", "   ", "Thriller"]]  # a text of spaces is no text
    root = write_native(tmp_path / "raw", items, nineties_log())
    manifest = ingest(root, tmp_path / "out", **NATIVE)
    assert summary(manifest, "impressions")["rows_quarantined"] == 0
    assert read(tmp_path / "out", "items").set_index("item_id").loc["i2", ["text", "image_path"]].tolist() == ["", ""]
    clicks = sum(item == "i2" and label == "1" for _, item, _, label in nineties_log())
    assert manifest["catalogue"]["by_content"]["neither"] == {"items": 1, "positive_rows": clicks} and clicks > 0
    assert quarantined(tmp_path / "out", "texts")["item_id"].tolist() == ["i2"]


def test_photos_named_by_item_id_fill_in_and_add_image_only_items(tmp_path: Path) -> None:
    items = [
        ["item_id", "text", "image_path"],
        ["i0", "Toy Story", ""],
        ["i1", "GoldenEye", "posters/i1.jpg"],
        ["i3", "Heat", "images/cover3.jpg"],
    ]
    root = write_native(tmp_path / "raw", items, nineties_log())
    for rel in ("images/i0.png", "images/i2.jpg", "posters/i1.jpg", "images/cover3.jpg", "images/sub/i9.jpg"):
        (root / rel).parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / rel)
    manifest = ingest(root, tmp_path / "out", **NATIVE)
    assert summary(manifest, "impressions")["rows_quarantined"] == 0  # i2 has no row, but a photo
    table = read(tmp_path / "out", "items").set_index("item_id")
    assert table["image_path"].to_dict() == {
        "i0": "images/images/i0.png",
        "i1": "images/posters/i1.jpg",
        "i3": "images/images/cover3.jpg",
        "i2": "images/images/i2.jpg",
    }
    assert table.loc["i2", "text"] == "" and all((tmp_path / "out" / p).is_file() for p in table["image_path"])
    catalogue = manifest["catalogue"]  # cover3.jpg is i3's (its row names it); a subfolder names no item
    assert catalogue["by_content"]["image_only"]["items"] == 1 and catalogue["photos_ignored_sample"] == [
        "images/sub/i9.jpg"
    ]


def test_item_without_row_or_photo_loses_its_impressions_with_a_reason(tmp_path: Path) -> None:
    root = write_native(tmp_path / "raw", TEXT_ONLY[:3], nineties_log())  # no row for i2
    manifest = ingest(root, tmp_path / "out", **NATIVE)
    bad = quarantined(tmp_path / "out", "impressions")
    assert summary(manifest, "impressions")["rows_quarantined"] == len(bad) > 0 and set(bad["item_id"]) == {"i2"}
    assert bad["reason"].str.contains("an item: a valid row of the items file or a photo").all()


def test_user_attributes_are_kept_strings_as_strings_and_numbers_as_numbers(tmp_path: Path) -> None:
    users = [
        ["user_id", "age", "gender", "occupation", "zip", "income"],
        ["u1", "24", "M", "technician", "85711", "3.5"],
        ["u3", "", "F", "", "", ""],
        ["u4", "53", "F", "other", "94043", "lots"],
    ]
    root = write_native(tmp_path / "raw", TEXT_ONLY, nineties_log(), users)
    manifest = ingest(root, tmp_path / "out", **NATIVE, numeric_user_columns=["income"])
    bad = quarantined(tmp_path / "out", "users")
    assert bad["user_id"].tolist() == ["u4"]
    assert bad.loc[0, "reason"] == "expect_column_values_to_be_in_set(income): a finite number or empty, got 'lots'"
    assert "users.csv" in manifest["files"]
    table = read(tmp_path / "out", "users")
    assert table.columns.tolist() == ["user_id", "age", "gender", "occupation", "zip", "income"]
    assert table["user_id"].tolist() == ["u1", "u3", "u2"]  # file rows, then users of the log without a row
    assert table["age"].dtype == float and table["income"].dtype == float
    assert table["gender"].fillna("<missing>").tolist() == ["M", "F", "<missing>"]  # null in the Parquet file
    assert table["zip"].fillna("<missing>").tolist() == ["85711", "<missing>", "<missing>"]  # a string, not a number
    assert table["income"].iloc[0] == 3.5 and np.isnan(table["age"].iloc[1]) and np.isnan(table["income"].iloc[2])
    assert read(tmp_path / "out", "interactions")["user_id"].value_counts().to_dict() == {"u1": 20, "u2": 20}
    with pytest.raises(DataError, match=r"ingest/users quarantined 33.33% of its rows \(limit 5.00%\)"):
        run_validate(ValidateConfig(), tmp_path / "out")
    assert run_validate(ValidateConfig(table_max_bad_fraction={"users": 0.5}), tmp_path / "out")["passed"]


def test_log_emptied_by_the_checks_is_one_error_line_with_the_quarantine_written(tmp_path: Path, capsys) -> None:
    root = write_native(tmp_path / "raw", TEXT_ONLY, nineties_log())
    with pytest.raises(DataError) as failure:
        ingest(root, tmp_path / "out", **NATIVE, min_date="2000-01-01")  # before: a TypeError traceback
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(
        f"{root}: no impressions left after the checks: all 40 rows of impressions.csv were "
        "quarantined (40 rows fail expect_column_values_to_be_between(ts): from 2000-01-01 to "
        "2099-12-31)"
    )
    assert len(quarantined(tmp_path / "out.rejected", "impressions")) == 40 and not (tmp_path / "out").exists()
    config = tmp_path / "ingest.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ingest": {"source": str(root), "format": "native", "min_date": "2000-01-01"},
                "data": {"tables_dir": str(tmp_path / "tables")},
            }
        )
    )
    assert main(["ingest", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("em3 ingest: error: ") and "no impressions left" in error and error.count("\n") == 1
    rejected = json.loads((tmp_path / "tables.rejected" / "manifest.json").read_text())
    assert rejected["raw_checks"][-1]["rows_quarantined"] == 40 and not (tmp_path / "tables").exists()


def test_times_are_kept_in_utc_and_only_identical_events_collapse(tmp_path: Path) -> None:
    log = [
        ["u1", "i0", "1997-09-20T10:00:00+02:00", "0"],
        ["u1", "i0", "1997-09-20T08:00:00Z", "1"],
        ["u1", "i0", "1997-09-20T09:15:00", "0"],
        ["u1", "i1", "1997-09-21", "1"],
        ["u2", "i2", "1997-09-30", "1"],
    ]
    root = write_native(tmp_path / "raw", TEXT_ONLY, log)
    ingest(root, tmp_path / "out", **NATIVE)
    rows = read(tmp_path / "out", "interactions")
    found = rows.assign(ts=rows["ts"].dt.strftime("%Y-%m-%d %H:%M"))[["user_id", "item_id", "ts", "label", "units"]]
    assert found.values.tolist() == [
        ["u1", "i0", "1997-09-20 08:00", 1, 1],  # 10:00+02:00 and 08:00Z are one event: label max, units sum
        ["u1", "i0", "1997-09-20 09:15", 0, 0],
        ["u1", "i1", "1997-09-21 00:00", 1, 1],
        ["u2", "i2", "1997-09-30 00:00", 1, 1],
    ]
    assert run_validate(ValidateConfig(), tmp_path / "out")["passed"]


def test_a_log_without_photos_draws_no_image_bars(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    root = write_native(tmp_path / "raw", TEXT_ONLY, nineties_log())
    ingest(root, tmp_path / "out", **NATIVE)
    run_validate(ValidateConfig(), tmp_path / "out")
    err = capfd.readouterr().err
    assert "copy images" not in err and "verify images" not in err


def test_a_log_checked_in_batches_gives_the_tables_checks_and_quarantine_of_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest checks the log in row batches (a 10-million-row log is never held as Python strings): with batches of
    7 rows the outputs are those of one batch, and a quarantined row still names its line in the file, also after
    a quoted value with a line break in an earlier batch."""
    log = nineties_log()
    log[3][0] = "bad\nuser"  # rows start at line 2: row 3 is on lines 5-6
    log[30][1] = "i9"  # not an item; on line 2 + 30 + 1 (the break above)
    root = write_native(tmp_path / "raw", TEXT_ONLY, log)
    outputs = []
    for batch in (1 << 20, 7):
        monkeypatch.setattr(native, "LOG_BATCH", batch)
        out = tmp_path / f"out{batch}"
        manifest = ingest(root, out, **NATIVE)
        outputs.append((manifest, read(out, "interactions"), quarantined(out, "impressions")))
    (whole, rows, bad), (batched, batched_rows, batched_bad) = outputs
    assert summary(whole, "impressions") == summary(batched, "impressions")
    assert summary(batched, "impressions")["rows_quarantined"] == 2 and len(batched_rows) == 38
    pd.testing.assert_frame_equal(rows, batched_rows)
    pd.testing.assert_frame_equal(bad, batched_bad)
    assert batched_bad["source_line"].tolist() == [5, 33]
