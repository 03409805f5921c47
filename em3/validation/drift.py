"""Drift of the new day(s) against a reference window (DESIGN §6, continuous training).

The *new days* are the day partitions that the last ingest added (``ingest.days``), or the newest partition after a
whole ingest; the *reference window* is the ``validation.drift.reference_days`` partitions before them. Each check
compares one signal of the new days' rows with the window's rows and is judged against its configured limit:

- ``label_rate``: the share of positive rows, as a ratio (new / reference, or its inverse, whichever is larger);
- ``new_item_share`` / ``new_user_share``: the share of rows whose item (user) no earlier day has, as an absolute
  change;
- ``missing_image_share`` / ``missing_text_share``: the share of rows whose item has no usable photo (text), as an
  absolute change. The items table is the catalogue as the latest ingest delivered it, so the reference days'
  shares are those recorded when each day was ingested (the manifest's partitions, ``modality_gaps``): a day run
  whose photos failed to arrive leaves every item without a photo, which a comparison on today's table would miss;
- ``numeric_psi``: the population stability index of each numeric column (interactions' ``sales_channel_id``,
  the users' numeric columns of the row's user; not ``units``, which is 0 on every negative row and so moves with
  the label rate, checked on its own);
- ``text_length_psi``: the PSI of the text length (characters) of the rows' items that have a text.

The shares and the label rate are Great Expectations ``expect_column_mean_to_be_between`` checks on the new days'
rows, with bounds from the window; GX has no PSI, which is computed here (10 quantile bins of the reference, a
missing value its own bin). A check over the limit warns or fails as ``action`` says (``off``: not run); with fewer
than ``min_rows`` rows on either side nothing is judged (a day of a few hundred rows moves by chance).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from em3.config import DriftCheck, DriftConfig
from em3.validation.engine import run_expectations

SHARE_CHECKS = {  # check -> the 0/1 column of the row signals whose mean it compares
    "label_rate": "label",
    "new_item_share": "new_item",
    "new_user_share": "new_user",
    "missing_image_share": "no_image",
    "missing_text_share": "no_text",
}
INTERACTION_NUMBERS = ("sales_channel_id",)
PSI_BINS = 10
PSI_FLOOR = 1e-4  # a bin's share is at least this, so an empty bin on one side gives a large but finite PSI


GAPS = {"missing_image_share": "rows_without_image", "missing_text_share": "rows_without_text"}


def modality_gaps(interactions: pd.DataFrame, items: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per day of ``interactions`` (ISO date): its rows whose item has no photo and no text in ``items`` (as this
    ingest delivered them); the manifest records them with each partition. Flags are made per item and then
    gathered per row (two booleans a row, not two strings)."""
    missing = items.set_index("item_id")[["image_path", "text"]].fillna("").eq("")
    per_row = missing.reindex(interactions["item_id"]).fillna(True).to_numpy(bool)  # (N, 2); unknown item: none
    gaps = (
        pd.DataFrame(
            per_row,
            columns=["rows_without_image", "rows_without_text"],
            index=pd.to_datetime(interactions["ts"]).dt.normalize(),
        )
        .groupby(level=0)
        .sum()
    )
    return {pd.Timestamp(day).date().isoformat(): {k: int(v) for k, v in row.items()} for day, row in gaps.iterrows()}


def recorded_shares(partitions: Mapping[str, Mapping[str, Any]], days: list[date]) -> dict[str, float]:
    """The missing-modality shares of ``days`` as ingested (``modality_gaps`` in the manifest's ``partitions``);
    empty when a day lacks the record (a dataset ingested before it existed): then today's items are used."""
    entries = [partitions.get(day.isoformat(), {}) for day in days]
    if not entries or any(gap not in entry for entry in entries for gap in GAPS.values()):
        return {}
    rows = sum(entry["rows"] for entry in entries)
    return {check: sum(entry[gap] for entry in entries) / max(rows, 1) for check, gap in GAPS.items()}


def drift_windows(
    days: list[date], added: tuple[date, date] | None, reference_days: int
) -> tuple[list[date], list[date]]:
    """(new days, reference days) among the partitions' ``days`` (sorted): those of ``added`` (the last ingest's
    ``ingest.days``) or the newest day, and up to ``reference_days`` partitions before the first of them."""
    new = [d for d in days if added[0] <= d <= added[1]] if added else days[-1:]
    if not new:
        return [], []
    before = [d for d in days if d < new[0]]
    return new, before[-reference_days:]


def row_signals(
    partitions: Mapping[date, Path], wanted: set[date], items: pd.DataFrame, users: pd.DataFrame
) -> pd.DataFrame:
    """Per row of the ``wanted`` days' partitions: its day, ``label``, whether its item and user are new (in no
    earlier partition), whether its item lacks a photo or a text, its item's text length (NaN without a text) and
    the numeric columns. Earlier partitions are read for their ids only."""
    seen_items = pd.Index([], dtype=object)
    seen_users = pd.Index([], dtype=object)
    item_info = items.set_index("item_id")
    user_numbers = users.set_index("user_id").select_dtypes("number")
    frames = []
    for day, path in sorted(partitions.items()):
        if day > max(wanted):
            break
        columns = ["user_id", "item_id"] + (["label", *INTERACTION_NUMBERS] if day in wanted else [])
        rows = pd.read_parquet(path, columns=columns)
        if day in wanted:
            info = item_info.reindex(rows["item_id"])
            text = info["text"].fillna("").to_numpy()
            signals = pd.DataFrame(
                {
                    "day": day,
                    "label": rows["label"].to_numpy(np.float64),
                    "new_item": (~rows["item_id"].isin(seen_items)).to_numpy(np.float64),
                    "new_user": (~rows["user_id"].isin(seen_users)).to_numpy(np.float64),
                    "no_image": (info["image_path"].fillna("") == "").to_numpy(np.float64),
                    "no_text": (text == "").astype(np.float64),
                    "text_length": np.where(text == "", np.nan, [len(t) for t in text]),
                    **{column: rows[column].to_numpy(np.float64) for column in INTERACTION_NUMBERS},
                    **{
                        f"user_{column}": values.to_numpy(np.float64)
                        for column, values in user_numbers.reindex(rows["user_id"]).items()
                    },
                }
            )
            frames.append(signals)
        seen_items = seen_items.union(pd.Index(rows["item_id"].unique()))
        seen_users = seen_users.union(pd.Index(rows["user_id"].unique()))
    return pd.concat(frames, ignore_index=True)


def psi(reference: np.ndarray, new: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``new`` against ``reference``: sum over bins of (p_new − p_ref) ·
    ln(p_new / p_ref), the bins cut at the reference's quantiles (ties merged, so a column of few values gets a
    bin per value), a missing value its own bin, each share floored at PSI_FLOOR."""
    finite = reference[~np.isnan(reference)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.zeros(0)

    def shares(values: np.ndarray) -> np.ndarray:
        index = np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values, side="right"))
        counts = np.bincount(index.astype(np.int64), minlength=len(edges) + 2)
        return np.maximum(counts / max(len(values), 1), PSI_FLOOR)

    p_ref, p_new = shares(reference), shares(new)
    return float(np.sum((p_new - p_ref) * np.log(p_new / p_ref)))


def check_drift(
    signals: pd.DataFrame,
    new: list[date],
    reference: list[date],
    cfg: DriftConfig,
    recorded: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The drift section of the validation report: each check's values, score, limit, action and status
    (``ok``, ``warn``, ``fail``; ``not judged`` with too few rows). ``signals``: ``row_signals`` of both windows;
    ``recorded``: reference values by check that replace the reference rows' (``recorded_shares``)."""
    is_new = signals["day"].isin(new).to_numpy()
    fresh, past = signals[is_new], signals[signals["day"].isin(reference).to_numpy()]
    section: dict[str, Any] = {
        "new_days": [d.isoformat() for d in new],
        "reference_days": [d.isoformat() for d in reference],
        "new_rows": int(len(fresh)),
        "reference_rows": int(len(past)),
        "min_rows": cfg.min_rows,
    }
    judged = len(fresh) >= cfg.min_rows and len(past) >= cfg.min_rows
    checks = _share_checks(fresh, past, cfg, judged, recorded or {})
    numbers = [  # a column no row has a value in (no user file with ages) says nothing
        c for c in signals.columns if (c in INTERACTION_NUMBERS or c.startswith("user_")) and signals[c].notna().any()
    ]
    for column in numbers:
        checks.append(_psi_check("numeric_psi", column, past[column], fresh[column], cfg.numeric_psi, judged))
    texts_judged = judged and fresh["text_length"].notna().sum() >= cfg.min_rows
    lengths = (past["text_length"], fresh["text_length"])
    checks.append(_psi_check("text_length_psi", "text_length", *lengths, cfg.text_length_psi, texts_judged))
    checks = [c for c in checks if c["action"] != "off"]
    return {
        **section,
        "judged": judged,
        "checks": checks,
        "failures": sum(c["status"] == "fail" for c in checks),
        "warnings": sum(c["status"] == "warn" for c in checks),
        "passed": not any(c["status"] == "fail" for c in checks),
    }


def no_drift_section(reason: str) -> dict[str, Any]:
    """The drift section when there is nothing to compare (a dataset of one day, no reference window)."""
    return {"judged": False, "note": reason, "checks": [], "failures": 0, "warnings": 0, "passed": True}


def _share_checks(
    fresh: pd.DataFrame, past: pd.DataFrame, cfg: DriftConfig, judged: bool, recorded: Mapping[str, float]
) -> list[dict]:
    """The label rate and the shares: GX mean-between checks on the new rows, bounds from the reference."""
    active = {name: column for name, column in SHARE_CHECKS.items() if getattr(cfg, name).action != "off"}
    reference = {
        name: recorded.get(name, float(past[column].mean()) if len(past) else float("nan"))
        for name, column in active.items()
    }
    expectations = []
    for name, column in active.items():
        limit, ref = getattr(cfg, name).limit, reference[name]
        low, high = (ref / limit, ref * limit) if name == "label_rate" else (ref - limit, ref + limit)
        expectations.append(
            ("expect_column_mean_to_be_between", {"column": column, "min_value": low, "max_value": high})
        )
    results = run_expectations("drift", fresh.reset_index(drop=True), expectations) if judged and active else []
    checks = []
    for i, (name, column) in enumerate(active.items()):
        observed = float(fresh[column].mean()) if len(fresh) else float("nan")
        ref = reference[name]
        if name == "label_rate":  # a rate of 0 over n rows reads as 1 / (2n): the ratio stays finite
            floor = 0.5 / max(min(len(fresh), len(past)), 1)
            score = max(observed, floor) / max(ref, floor)
            score = max(score, 1 / score)
        else:
            score = abs(observed - ref)
        within = bool(results[i].success) if results else True
        checks.append(_check(name, column, observed, ref, score, getattr(cfg, name), judged, within))
    return checks


def _psi_check(name: str, column: str, past: pd.Series, fresh: pd.Series, cfg: DriftCheck, judged: bool) -> dict:
    """The PSI of ``column`` (reference rows ``past``, new rows ``fresh``); the values shown are the means."""
    score = psi(past.to_numpy(np.float64), fresh.to_numpy(np.float64)) if judged else float("nan")
    return _check(name, column, float(fresh.mean()), float(past.mean()), score, cfg, judged, score <= cfg.limit)


def _check(
    name: str, column: str, new: float, reference: float, score: float, cfg: DriftCheck, judged: bool, within: bool
) -> dict[str, Any]:
    status = "not judged" if not judged else "ok" if within else cfg.action
    return {  # NaN (nothing to measure) as None: the report is JSON
        "check": name,
        "column": column,
        "new": _number(new),
        "reference": _number(reference),
        "score": _number(score) if judged else None,
        "limit": cfg.limit,
        "action": cfg.action,
        "status": status,
    }


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
