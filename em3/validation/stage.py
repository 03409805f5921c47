"""The validate stage: the canonical suites on ingest's output, then the limits (em3.validation.report) over
them, over the raw checks ingest recorded in its manifest and over the catalogue's missing modalities.

Writes ``report.json``, ``report.md``, ``report.html`` and ``quarantine/<table>.parquet`` (failing canonical rows with a
``reason``) to ``<data_dir>/validation`` or another folder (e.g. outside ingest's output, for DVC). The
interactions are read in row batches, day partition by day partition (em3.validation.batches): memory is bounded
by the batch, not the log, and every row must lie on its partition's day. The
canonical tables are not rewritten: they are ingest's outputs, and rows failing here point at a broken
contract rather than at bad input, which ingest has already quarantined.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from pydantic import ValidationError

from em3.atomic import staged_dir, write_json
from em3.config import DriftConfig, IngestConfig, ValidateConfig
from em3.errors import DataError
from em3.validation.batches import check_interactions_files
from em3.validation.contract import INTERACTIONS, ITEMS, MANIFEST, USERS, interaction_files, read_manifest
from em3.validation.drift import check_drift, drift_windows, no_drift_section, recorded_shares, row_signals
from em3.validation.freshness import freshness_problems
from em3.validation.inputs import RECORD, validated_tables
from em3.validation.modalities import content_summary
from em3.validation.output import write_parquet
from em3.validation.report import build_report, failure_message, render_html, render_markdown
from em3.validation.suites import check_items, check_users

REPORT = "report.json"


def run_validate(
    cfg: ValidateConfig, data_dir: Path, out_dir: Path | None = None, source: str | None = None
) -> dict[str, Any]:
    """Validate ``data_dir`` (an ingest output) into ``out_dir`` (default ``data_dir/validation``, replaced);
    returns the report, or raises DataError with it when a table's quarantined fraction exceeds
    ``cfg.max_bad_fraction``, or at once when the tables were not ingested from ``source`` (None: not compared)
    or no longer match their source (em3.validation.freshness)."""
    data_dir = Path(data_dir)
    out_dir = Path(out_dir) if out_dir is not None else data_dir / "validation"
    manifest = read_manifest(data_dir)
    checked_tables = validated_tables(data_dir, manifest, source)  # recorded: later stages compare (inputs.py)
    if problems := freshness_problems(data_dir, manifest):
        raise DataError("validate refused: " + "; ".join(problems))
    try:
        rules, raw_checks = IngestConfig.model_validate(manifest["params"]), manifest["raw_checks"]
    except (KeyError, ValidationError) as exc:
        raise DataError(f"{data_dir / MANIFEST}: not written by this em3 version's ingest ({exc})") from None
    users = _read(data_dir, "users", USERS)
    items = _read(data_dir, "items", ITEMS)
    partitions = _interaction_partitions(data_dir)
    with staged_dir(out_dir, REPORT) as out:
        quarantine = out / "quarantine"
        log_summary, positives = check_interactions_files(
            partitions, rules, users["user_id"], items["item_id"], quarantine / "interactions.parquet"
        )
        checks = [check_items(items, rules, data_dir), check_users(users, rules)]
        for check in checks:
            if len(check.quarantine):
                write_parquet(check.quarantine, quarantine / f"{check.summary['table']}.parquet")
        bad_image = checks[0].quarantine["reason"].str.contains("(image_path)", regex=False)
        usable_image = ~items.index.isin(bad_image.index[bad_image])
        usable_items = items.assign(image_path=items["image_path"].where(usable_image, ""))  # a bad photo is none
        report = build_report(
            {"ingest": raw_checks, "validate": [log_summary, *(check.summary for check in checks)]},
            cfg,
            content_summary(items, positives, usable_image),
            _drift(cfg.drift, partitions, manifest.get("partitions", {}), rules.days, usable_items, users),
        )
        report[RECORD] = checked_tables
        write_json(out / REPORT, report)
        (out / "report.md").write_text(render_markdown(report))
        (out / "report.html").write_text(render_html(report))
    if not report["passed"]:
        raise DataError(f"{failure_message(report)}\nReport: {out_dir / 'report.md'}")
    return report


def _drift(
    cfg: DriftConfig,
    partitions: dict[date, Path],
    recorded: dict[str, Any],
    added: tuple[date, date] | None,
    items: pd.DataFrame,
    users: pd.DataFrame,
) -> dict:
    """The report's drift section: the days ``added`` by the last ingest (or the newest) against the days before
    (``recorded``: the manifest's partitions, with the shares of rows without photo or text as ingested)."""
    new, reference = drift_windows(list(partitions), added, cfg.reference_days)
    if not new or not reference:
        return no_drift_section(f"not checked: no day before {new[0] if new else 'the new days'} to compare with")
    signals = row_signals(partitions, {*new, *reference}, items, users)
    return check_drift(signals, new, reference, cfg, recorded_shares(recorded, reference))


def _interaction_partitions(data_dir: Path) -> dict[date, Path]:
    """The interactions' day partitions, after checking that each has the contract's columns."""
    partitions = interaction_files(data_dir)
    for path in partitions.values():
        if missing := [column for column in INTERACTIONS.names if column not in pq.read_schema(path).names]:
            raise DataError(f"{path}: missing column(s) {missing}; expected {INTERACTIONS.names}")
    return partitions


def _read(data_dir: Path, table: str, columns: Sequence[str]) -> pd.DataFrame:
    return pd.read_parquet(_table_path(data_dir, table, columns))


def _table_path(data_dir: Path, table: str, columns: Sequence[str]) -> Path:
    """The table's file, after checking that it exists and has ``columns``."""
    path = data_dir / f"{table}.parquet"
    if not path.is_file():
        raise DataError(f"{path}: not found; expected the {table} table written by `em3 ingest`")
    if missing := [column for column in columns if column not in pq.read_schema(path).names]:
        raise DataError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
    return path
