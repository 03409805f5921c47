"""The ingest stage: a local or S3 source in the H&M or native layout -> canonical Parquet tables + manifest.

Raw files are read as strings and checked first (em3.validation.suites); failing rows go to
``quarantine/<table>.parquet`` with a reason and are left out of everything built afterwards (negatives
included). Bad rows never stop ingest: ``validate`` applies the thresholds. A missing text or photo only masks
that modality (em3.ingest.items). Outputs, in ``out_dir``: ``interactions/day=YYYY-MM-DD/part-0.parquet`` (a
partition per day), ``items.parquet``, ``users.parquet``, ``images/``, ``quarantine/``, ``manifest.json``.

When no purchase or impression is left after the checks, ingest stops with a one-line DataError saying how many
rows which rules took, writes the quarantine and a manifest to ``<out_dir>.rejected/`` and leaves ``out_dir``
as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from em3.atomic import staged_dir, write_json
from em3.config import IngestConfig
from em3.errors import DataError
from em3.ingest.days import carry_over, events_of_days, merged_image_sums, merged_table
from em3.ingest.hm import read_hm
from em3.ingest.images import copy_images
from em3.ingest.interactions import build_interactions
from em3.ingest.manifest import make_manifest
from em3.ingest.native import read_native
from em3.ingest.raw import RawData
from em3.sources import Source, open_source
from em3.validation.contract import MANIFEST, read_interactions, read_manifest, resolve_split_dates
from em3.validation.drift import modality_gaps
from em3.validation.engine import Checked
from em3.validation.freshness import mark_stale
from em3.validation.output import write_interactions, write_parquet
from em3.validation.suites import INTERACTION_KEY

QUARANTINE = "quarantine"
REJECTED_SUFFIX = ".rejected"
Reader = Callable[[Source, IngestConfig, Path], RawData]


def run_ingest(cfg: IngestConfig, out_dir: Path) -> dict[str, Any]:
    """Ingest ``cfg.source`` into ``out_dir`` (replaced only on success; on failure a previous output there is
    marked stale, em3.validation.freshness, unless the run only added days, ``ingest.days``); returns the
    manifest."""
    out_dir = Path(out_dir)
    rejected = out_dir.with_name(out_dir.name + REJECTED_SUFFIX)
    read = read_hm if cfg.format == "hm" else read_native
    try:
        manifest = _ingest(open_source(cfg.source), read, cfg, out_dir, rejected)
    except Exception as exc:
        if not cfg.days:  # a failed day run leaves the dataset as valid as it was
            mark_stale(out_dir, f"{type(exc).__name__}: {exc}")
        raise
    if (rejected / MANIFEST).is_file():  # the record of an earlier failed run of this output is stale now
        shutil.rmtree(rejected)
    return manifest


def _ingest(source: Source, read: Reader, cfg: IngestConfig, out_dir: Path, rejected: Path) -> dict[str, Any]:
    previous = out_dir if cfg.days and (out_dir / MANIFEST).is_file() else None  # days added to this output
    with tempfile.TemporaryDirectory() as scratch, staged_dir(out_dir, MANIFEST) as stage:
        raw = read(source, cfg, Path(scratch))
        if raw.events.empty:
            raise DataError(_reject(raw, cfg, out_dir, rejected))
        cfg = resolve_split_dates(_dates_of(previous, cfg), raw.events["ts"])  # the manifest records the dates used
        events = events_of_days(raw.events, cfg.days, cfg.source) if cfg.days else raw.events
        quarantine = Path(QUARANTINE, f"days={cfg.days[0]}_{cfg.days[1]}") if cfg.days else Path(QUARANTINE)
        kept_partitions = {}
        if previous is not None:
            fetched = {f"images/{key}" for key in raw.items["image_key"] if key}
            kept_partitions = carry_over(previous, stage, cfg.days, fetched, quarantine)
        images = copy_images(source, raw.items, raw.image_root, stage, cfg)
        interactions, negatives_missing = build_interactions(events, raw.purchases, cfg)
        items = raw.items.drop(columns="image_key")
        items.insert(2, "image_path", images.paths)
        users = raw.users
        if previous is not None:
            merged_image_sums(previous, stage)
            items = merged_table(previous, "items", items, "item_id")
            users = merged_table(previous, "users", users, "user_id")
        written = write_interactions(interactions, stage)
        gaps = modality_gaps(interactions, items)  # as this run's catalogue has them: validate's drift reference
        new_partitions = {
            day: {**counts, **gaps[day], "source": cfg.source, "files": raw.files} for day, counts in written.items()
        }
        partitions = dict(sorted({**kept_partitions, **new_partitions}.items()))
        for name, table in (("items", items), ("users", users)):
            write_parquet(table, stage / f"{name}.parquet")
        whole = interactions if previous is None else read_interactions(stage, [*INTERACTION_KEY, "label"]).to_pandas()
        tables = {"interactions": whole, "items": items, "users": users}
        checks = [*raw.checks, images.checked]
        _write_quarantine(checks, stage / quarantine)
        stamps = {rel: source.read_stamp(rel, sha) for rel, sha in raw.files.items()}
        manifest = make_manifest(cfg, raw, images.summary, tables, checks, negatives_missing, stamps, partitions)
        write_json(stage / MANIFEST, manifest)
    return manifest


def _dates_of(previous: Path | None, cfg: IngestConfig) -> IngestConfig:
    """``cfg`` with the split dates of the output it adds days to, where it sets none itself: every day run of one
    dataset splits it at the same dates."""
    if previous is None:
        return cfg
    params = read_manifest(previous).get("params", {})
    dates = {name: getattr(cfg, name) or params.get(name) for name in ("valid_start", "test_start")}
    return IngestConfig.model_validate({**cfg.model_dump(), **dates})


def _write_quarantine(checks: list[Checked], folder: Path) -> None:
    for check in checks:
        if len(check.quarantine):
            write_parquet(check.quarantine, folder / f"{check.summary['table']}.parquet")


def _reject(raw: RawData, cfg: IngestConfig, out_dir: Path, rejected: Path) -> str:
    """Write the quarantine and a manifest of a run that left no events to ``rejected``; the error's text."""
    (log,) = [check.summary for check in raw.checks if check.summary["table"] in ("transactions", "impressions")]
    failures = sorted(log["failures"], key=lambda failure: -failure["count"])
    rules = "; ".join(f"{f['count']} rows fail {f['expectation']}({f['column']}): {f['expect']}" for f in failures)
    what = "purchases" if raw.purchases else "impressions"
    message = (
        f"{cfg.source}: no {what} left after the checks: all {log['rows_in']} rows of {raw.log_file} were "
        f"quarantined ({rules}); rows and reasons in {rejected / QUARANTINE}, {out_dir} left as it was"
    )
    with staged_dir(rejected, MANIFEST) as stage:
        _write_quarantine(raw.checks, stage / QUARANTINE)
        write_json(
            stage / MANIFEST,
            {
                "rejected": message,
                "source": cfg.source,
                "format": cfg.format,
                "params": cfg.model_dump(mode="json"),
                "files": raw.files,
                "raw_checks": [check.summary for check in raw.checks],
            },
        )
    return message
