"""``manifest.json``: what ingest read (source, sha256 and stamp of every file), with which parameters, what it wrote
(row counts per table and split, the catalogue per modality, the images and their real formats) and what its
raw checks quarantined. ``validate`` reads it back (em3.validation.contract.read_manifest).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pandas as pd

from em3.config import IngestConfig
from em3.ingest.raw import RawData
from em3.validation.contract import SPLITS, assign_split
from em3.validation.engine import Checked
from em3.validation.modalities import content_summary, positive_rows


def make_manifest(
    cfg: IngestConfig,
    raw: RawData,
    images: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    checks: list[Checked],
    negatives_missing: int,
    stamps: dict[str, dict[str, Any]],
    partitions: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """``stamps``: per source file read, which version was read (em3.sources, em3.validation.freshness);
    ``partitions``: per day partition of the interactions, its rows, positives, source and source files."""
    interactions = tables["interactions"]
    by_split = interactions["label"].groupby(assign_split(interactions["ts"], cfg.valid_start, cfg.test_start))
    return {
        "em3_version": _version(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": cfg.source,
        "format": cfg.format,
        "params": cfg.model_dump(mode="json"),
        "files": raw.files,
        "source_stamps": stamps,
        "images": images,
        "catalogue": {**content_summary(tables["items"], positive_rows(interactions)), **raw.catalogue},
        "rows": {name: len(table) for name, table in tables.items()},
        "splits": {
            split: {
                "rows": int(by_split.size().get(split, 0)),
                "positives": int(by_split.sum().get(split, 0)),
            }
            for split in SPLITS
        },
        "partitions": partitions,
        "negatives_missing": negatives_missing,
        **raw.repairs,
        "raw_checks": [check.summary for check in checks],
    }


def _version() -> str:
    try:
        return version("em3")
    except PackageNotFoundError:
        return "unknown"
