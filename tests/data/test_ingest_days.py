"""Adding days to an ingested dataset (``ingest.days``, DESIGN §6's continuous training): each day its own
partition, a day ingested again replaces exactly its partition, the rest carried over, and validate and training
read the result as one table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from em3.config import ValidateConfig
from em3.errors import DataError
from em3.validation import run_validate
from em3.validation.contract import interaction_files
from tests.data.conftest import csv_text, ingest, read

DAYS = [date(2020, 3, d) for d in (1, 2, 3, 4)]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A native log over four days (three users, items a, b, c; c first shown on day 3, with a photo)."""
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    for item in ("a", "c"):
        Image.new("RGB", (8, 8), (200, 10 * len(item), 0)).save(root / "images" / f"{item}.jpg")
    (root / "items.csv").write_text(csv_text([["item_id", "text"], ["a", "A red dress"], ["b", "A shirt"]]))
    rows = []
    for d, day in enumerate(DAYS):
        for u in range(3):
            for h, item in enumerate(("a", "b", "c") if d >= 2 else ("a", "b")):
                rows.append((f"u{u}", item, pd.Timestamp(day) + pd.Timedelta(hours=9 + h, minutes=u), (u + h + d) % 2))
    pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "label"]).to_parquet(root / "impressions.parquet")
    return root


def add(source: Path, out: Path, first: date, last: date) -> dict:
    params = {"valid_start": "2020-03-03", "test_start": "2020-03-04", "days": (first, last)}
    return ingest(source, out, format="native", native_log="impressions.parquet", **params)


def test_days_added_one_run_at_a_time_make_the_partitions_of_a_whole_ingest(source: Path, tmp_path: Path) -> None:
    out, whole = tmp_path / "out", tmp_path / "whole"
    add(source, out, DAYS[0], DAYS[1])  # a new output: the days of the range
    assert list(interaction_files(out)) == DAYS[:2]
    (source / "items.csv").write_text(
        csv_text([["item_id", "text"], ["a", "A red dress"], ["b", "A shirt"], ["c", "A coat"]])
    )
    for day in DAYS[2:]:
        manifest = add(source, out, day, day)
    ingest(
        source,
        whole,
        format="native",
        native_log="impressions.parquet",
        valid_start="2020-03-03",
        test_start="2020-03-04",
    )
    for day, path in interaction_files(whole).items():
        pd.testing.assert_frame_equal(pd.read_parquet(interaction_files(out)[day]), pd.read_parquet(path))
    assert list(manifest["partitions"]) == [day.isoformat() for day in DAYS]
    assert manifest["partitions"]["2020-03-04"]["rows"] == 9 and manifest["rows"]["interactions"] == 30
    assert {name: s["rows"] for name, s in manifest["splits"].items()} == {"train": 12, "valid": 9, "test": 9}
    items = read(out, "items").set_index("item_id")
    assert items.loc["c", "text"] == "A coat" and items.loc["b", "image_path"] == ""
    sums = (out / "images" / "SHA256SUMS").read_text()
    for item in ("a", "c"):  # a's photo carried over from the first run, c's fetched by a later one
        assert (out / items.loc[item, "image_path"]).is_file() and items.loc[item, "image_path"] in sums
    assert run_validate(ValidateConfig(), out)["passed"]


def test_a_day_ingested_again_replaces_exactly_its_partition(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    add(source, out, DAYS[0], DAYS[3])
    before = {day: path.read_bytes() for day, path in interaction_files(out).items()}
    log = pd.read_parquet(source / "impressions.parquet")
    on_day = log["ts"].dt.normalize() == pd.Timestamp(DAYS[1])
    log.loc[on_day, "label"] = 1 - log.loc[on_day, "label"]  # the day's log, corrected upstream
    log[~(on_day & (log["user_id"] == "u2"))].to_parquet(source / "impressions.parquet", index=False)  # u2 withdrawn
    manifest = add(source, out, DAYS[1], DAYS[1])
    after = {day: path.read_bytes() for day, path in interaction_files(out).items()}
    assert [day for day in DAYS if before[day] != after[day]] == [DAYS[1]]
    day_rows = pd.read_parquet(interaction_files(out)[DAYS[1]])
    assert len(day_rows) == 4 and manifest["partitions"]["2020-03-02"]["rows"] == 4
    assert manifest["partitions"]["2020-03-02"]["positives"] == int(day_rows["label"].sum())
    assert manifest["rows"]["interactions"] == 28
    assert manifest["params"]["valid_start"] == "2020-03-03"  # the dataset's split dates, whatever the run's log


def test_days_without_events_are_an_error_that_leaves_the_output_as_it_was(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    add(source, out, DAYS[0], DAYS[1])
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(DataError, match=r"no event on ingest.days 2020-04-01..2020-04-02"):
        add(source, out, date(2020, 4, 1), date(2020, 4, 2))
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    with pytest.raises(ValueError, match="first day after last"):
        add(source, out, DAYS[1], DAYS[0])
