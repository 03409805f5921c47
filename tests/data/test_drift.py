"""Drift of the new day against the days before it (``validation.drift``, issue 24): each check flags the shift it
is for and only that one, warns or fails as configured, and validate reports it and stops on a failing one."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from em3.config import DriftConfig, ValidateConfig
from em3.errors import DataError
from em3.validation import run_validate
from em3.validation.drift import check_drift, drift_windows, modality_gaps, no_drift_section, psi
from em3.validation.modalities import content_summary
from em3.validation.report import build_report, render_html
from tests.data.conftest import ingest

NEW, REFERENCE = [date(2020, 3, 8)], [date(2020, 3, d) for d in range(1, 8)]
ROWS_A_DAY = 400


def test_psi_is_zero_for_the_same_distribution_and_follows_its_formula() -> None:
    reference = np.repeat([0.0, 1.0], 50)
    assert psi(reference, reference[::-1].copy()) == 0.0
    # bins cut at the reference's quantiles (0, 0.5, 1): the values 0 and 1 fall in bins of their own, with
    # reference shares 0.5 / 0.5 and new ones 0.9 / 0.1; every other bin is empty on both sides (floored alike)
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert psi(reference, np.repeat([0.0, 1.0], [90, 10])) == pytest.approx(expected, rel=1e-12)
    half_missing = np.concatenate([np.repeat([0.0, 1.0], 25), np.full(50, np.nan)])  # a bin for missing values
    floor = 1e-4
    expected = 2 * (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.5 - floor) * np.log(0.5 / floor)
    assert psi(reference, half_missing) == pytest.approx(expected, rel=1e-12)


def test_the_new_days_are_those_the_last_ingest_added_or_the_newest() -> None:
    days = [date(2020, 3, d) for d in range(1, 11)]
    assert drift_windows(days, None, 3) == (days[-1:], days[6:9])
    assert drift_windows(days, (date(2020, 3, 4), date(2020, 3, 5)), 7) == (days[3:5], days[:3])
    assert drift_windows(days, (date(2020, 4, 1), date(2020, 4, 2)), 7) == ([], [])


def signals(seed: int = 0) -> pd.DataFrame:
    """Row signals (em3.validation.drift.row_signals's columns) of seven reference days and one new day, drawn
    from one distribution: 20 % positives, 10 % new items, 5 % new users, 10 % rows without photo, 30 % without
    text, texts of 40-120 characters, ages 18-70, one or two sales channels."""
    rng = np.random.default_rng(seed)
    n = ROWS_A_DAY * 8
    has_text = rng.random(n) > 0.3
    return pd.DataFrame(
        {
            "day": np.repeat(REFERENCE + NEW, ROWS_A_DAY),
            "label": (rng.random(n) < 0.2).astype(float),
            "new_item": (rng.random(n) < 0.1).astype(float),
            "new_user": (rng.random(n) < 0.05).astype(float),
            "no_image": (rng.random(n) < 0.1).astype(float),
            "no_text": (~has_text).astype(float),
            "text_length": np.where(has_text, rng.integers(40, 120, n), np.nan),
            "units": rng.integers(0, 3, n).astype(float),
            "sales_channel_id": rng.integers(1, 3, n).astype(float),
            "user_age": rng.uniform(18, 70, n),
        }
    )


def shifted(frame: pd.DataFrame, column: str, values: np.ndarray) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame["day"] == NEW[0], column] = values
    return frame


SHIFTS = {  # check -> (column, the new day's values), each a shift of that signal alone
    "label_rate": ("label", (np.arange(ROWS_A_DAY) % 5 < 3).astype(float)),  # 60 % positives, 3x the rate
    "new_item_share": ("new_item", (np.arange(ROWS_A_DAY) % 2).astype(float)),  # half the rows of new items
    "new_user_share": ("new_user", (np.arange(ROWS_A_DAY) % 10 < 4).astype(float)),  # 40 % new users
    "missing_image_share": ("no_image", np.ones(ROWS_A_DAY)),  # no photos at all
    "missing_text_share": ("no_text", (np.arange(ROWS_A_DAY) % 10 < 7).astype(float)),  # 70 % without text
    "numeric_psi": ("user_age", np.linspace(60, 90, ROWS_A_DAY)),  # an older audience
    "text_length_psi": ("text_length", np.full(ROWS_A_DAY, 400.0)),  # long texts
}


def test_an_unshifted_day_passes_every_check() -> None:
    drift = check_drift(signals(), NEW, REFERENCE, DriftConfig(min_rows=100))
    assert drift["judged"] and drift["passed"] and drift["warnings"] == 0
    assert {c["status"] for c in drift["checks"]} == {"ok"}
    label = next(c for c in drift["checks"] if c["check"] == "label_rate")
    reference_rows = signals().query("day != @NEW[0]")
    assert label["reference"] == pytest.approx(reference_rows["label"].mean(), rel=1e-12)
    columns = {c["column"] for c in drift["checks"] if c["check"] == "numeric_psi"}
    assert columns == {"sales_channel_id", "user_age"}


@pytest.mark.parametrize("check", SHIFTS)
@pytest.mark.parametrize("action", ["warn", "fail"])
def test_each_check_flags_its_own_shift_as_configured(check: str, action: str) -> None:
    column, values = SHIFTS[check]
    limit = getattr(DriftConfig(), check).limit
    cfg = DriftConfig(min_rows=100, **{check: {"limit": limit, "action": action}})
    drift = check_drift(shifted(signals(), column, values), NEW, REFERENCE, cfg)
    flagged = [(c["check"], c["column"]) for c in drift["checks"] if c["status"] != "ok"]
    assert flagged == [(check, column)]
    (hit,) = [c for c in drift["checks"] if c["column"] == column and c["check"] == check]
    assert hit["status"] == action and hit["score"] > hit["limit"]
    assert drift["passed"] == (action == "warn") and drift[{"warn": "warnings", "fail": "failures"}[action]] == 1


def test_off_checks_are_not_run_and_small_days_are_not_judged() -> None:
    shift = shifted(signals(), "label", np.ones(ROWS_A_DAY))
    off = check_drift(shift, NEW, REFERENCE, DriftConfig(min_rows=100, label_rate={"limit": 2, "action": "off"}))
    assert "label_rate" not in {c["check"] for c in off["checks"]} and off["passed"]
    small = check_drift(shift, NEW, REFERENCE, DriftConfig(min_rows=ROWS_A_DAY + 1))
    assert not small["judged"] and small["passed"]
    assert {c["status"] for c in small["checks"]} == {"not judged"}
    with pytest.raises(ValueError, match="label_rate.limit is a ratio"):
        DriftConfig(label_rate={"limit": 0.5})


@pytest.fixture
def daily_source(tmp_path: Path) -> Path:
    """A native log of eight days (March 1-8, 2020), 30 users a day over 12 items with photo and text, 20 % clicks."""
    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    items = [f"i{k}" for k in range(12)]
    for k, item in enumerate(items):
        Image.new("RGB", (8, 8), (20 * k, 90, 10)).save(root / "images" / f"{item}.jpg")
    pd.DataFrame({"item_id": items, "text": [f"A soft piece, number {k}" for k in range(12)]}).to_csv(
        root / "items.csv", index=False
    )
    rng = np.random.default_rng(0)
    rows = []
    for d in range(8):
        day = pd.Timestamp(date(2020, 3, 1) + timedelta(days=d))
        for u in range(30):
            for k, item in enumerate(items):
                rows.append((f"u{u}", item, day + pd.Timedelta(minutes=12 * u + k), int(rng.random() < 0.2)))
    pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "label"]).to_parquet(root / "impressions.parquet")
    return root


def add_days(source: Path, out: Path, first: date, last: date) -> None:
    ingest(
        source,
        out,
        format="native",
        native_log="impressions.parquet",
        valid_start="2020-03-06",
        test_start="2020-03-08",
        days=(first, last),
    )


def test_validate_stops_on_a_day_whose_clicks_tripled_and_passes_the_clean_days(
    daily_source: Path, tmp_path: Path
) -> None:
    out, cfg = tmp_path / "out", ValidateConfig(drift=DriftConfig(min_rows=300))
    add_days(daily_source, out, date(2020, 3, 1), date(2020, 3, 6))
    assert "not checked" in (report := run_validate(cfg, out))["drift"]["note"]  # the run's days: none before
    add_days(daily_source, out, date(2020, 3, 7), date(2020, 3, 7))
    report = run_validate(cfg, out)  # the day added against the six before it
    assert report["drift"]["new_days"] == ["2020-03-07"] and len(report["drift"]["reference_days"]) == 6
    assert report["drift"]["judged"] and report["passed"]
    log = pd.read_parquet(daily_source / "impressions.parquet")
    on_day = log["ts"].dt.normalize() == pd.Timestamp(date(2020, 3, 8))
    log.loc[on_day, "label"] = (np.arange(on_day.sum()) % 5 < 3).astype(int)  # 60 % clicks: 3x
    log.to_parquet(daily_source / "impressions.parquet")
    add_days(daily_source, out, date(2020, 3, 8), date(2020, 3, 8))
    with pytest.raises(DataError, match=r"drift: label_rate of label is \d\.\d+ \(new 0\.6"):
        run_validate(cfg, out)
    report_md = (out / "validation" / "report.md").read_text()
    assert "| label_rate | label |" in report_md and "FAIL" in report_md
    warn = ValidateConfig(drift=DriftConfig(min_rows=300, label_rate={"limit": 2.0, "action": "warn"}))
    report = run_validate(warn, out)  # configured to warn: the run goes on, the report says so
    assert report["passed"] and report["drift"]["warnings"] == 1
    assert report["drift"]["new_days"] == ["2020-03-08"]


def test_a_day_without_photos_is_flagged(daily_source: Path, tmp_path: Path) -> None:
    out, cfg = tmp_path / "out", ValidateConfig(drift=DriftConfig(min_rows=300))
    add_days(daily_source, out, date(2020, 3, 1), date(2020, 3, 7))
    for photo in (daily_source / "images").iterdir():  # the photo feed breaks: the day's items come without photos
        photo.unlink()
    add_days(daily_source, out, date(2020, 3, 8), date(2020, 3, 8))
    with pytest.raises(DataError, match=r"drift: missing_image_share of no_image is 1 \(new 1, reference 0"):
        run_validate(cfg, out)


def test_the_html_report_escapes_what_the_data_holds() -> None:
    items = pd.DataFrame({"item_id": ["a"], "text": ["x"], "image_path": [""]})
    summary = {
        "table": "items",
        "kind": "rows",
        "rows_in": 2,
        "rows_kept": 1,
        "rows_quarantined": 1,
        "failures": [
            {"expectation": "e", "column": "text", "expect": "text", "count": 1, "sample": ["<script>x</script>"]}
        ],
    }
    report = build_report(
        {"validate": [summary]},
        ValidateConfig(max_bad_fraction=1.0),
        content_summary(items, pd.Series()),
        no_drift_section("not checked: one day"),
    )
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Not checked: one day." in html


def test_ingest_records_each_days_rows_without_photo_or_text() -> None:
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "text": ["A", "", "C"], "image_path": ["a.jpg", "b.jpg", ""]})
    ts = pd.to_datetime(["2020-03-01 09:00", "2020-03-01 10:00", "2020-03-02 09:00", "2020-03-02 11:00"])
    interactions = pd.DataFrame({"item_id": ["a", "b", "c", "z"], "ts": ts})  # z: not in the items table
    assert modality_gaps(interactions, items) == {
        "2020-03-01": {"rows_without_image": 0, "rows_without_text": 1},
        "2020-03-02": {"rows_without_image": 2, "rows_without_text": 1},
    }
