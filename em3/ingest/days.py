"""Adding days to an ingested dataset (``ingest.days``): the source's events of those days become their own day
partitions of the existing output. A day ingested again replaces its partition (a day of the range without events
loses it); the partitions of other days, and the items, users and images ingested before, are carried over into the
new output (this run's items and users win on their id). The whole output is then swapped in at once
(em3.atomic.staged_dir), so a reader sees the old dataset or the new one, never a mix.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from em3.errors import DataError
from em3.validation.contract import IMAGE_SUMS, interaction_files, read_image_sums, read_manifest


def events_of_days(events: pd.DataFrame, days: tuple[date, date], source: str) -> pd.DataFrame:
    """The events whose day lies in ``days`` (first, last); a DataError when there is none."""
    day = events["ts"].dt.normalize()
    kept = events[(day >= pd.Timestamp(days[0])) & (day <= pd.Timestamp(days[1]))]
    if kept.empty:
        first, last = events["ts"].min(), events["ts"].max()
        raise DataError(f"{source}: no event on ingest.days {days[0]}..{days[1]} (the source's run {first}..{last})")
    return kept


def carry_over(
    previous: Path, stage: Path, days: tuple[date, date], fetched_images: set[str], quarantine: Path
) -> dict[str, Any]:
    """Link into ``stage`` the partitions of ``previous`` outside ``days``, its images (but those this run fetches
    anew, ``fetched_images`` as ``images/<key>`` paths: the fetch writes a new file) and its quarantine (but this
    run's folder ``quarantine``, which it rewrites); returns the previous manifest's entries of the days kept."""
    manifest = read_manifest(previous)
    kept = {}
    for day, path in interaction_files(previous).items():
        if not days[0] <= day <= days[1]:
            _link(path, stage / path.relative_to(previous))
            kept[day.isoformat()] = manifest.get("partitions", {}).get(day.isoformat(), {})
    for path in (previous / "images").rglob("*"):
        rel = path.relative_to(previous).as_posix()
        if path.is_file() and rel != IMAGE_SUMS and rel not in fetched_images:
            _link(path, stage / rel)
    for path in (previous / quarantine.parts[0]).rglob("*"):
        if path.is_file() and not path.relative_to(previous).is_relative_to(quarantine):
            _link(path, stage / path.relative_to(previous))
    return kept


def merged_image_sums(previous: Path, stage: Path) -> None:
    """Rewrite ``stage``'s image sums to cover the images carried over as well as this run's."""
    sums = {**read_image_sums(previous), **read_image_sums(stage)}
    sums = {name: sha for name, sha in sums.items() if (stage / name).is_file()}
    (stage / IMAGE_SUMS).write_text("".join(f"{sha}  {name}\n" for name, sha in sorted(sums.items())))


def merged_table(previous: Path, name: str, new: pd.DataFrame, key: str) -> pd.DataFrame:
    """``previous``'s table ``name`` with this run's rows ``new`` (which win on ``key``) appended."""
    old = pd.read_parquet(previous / f"{name}.parquet")
    return pd.concat([old[~old[key].isin(new[key])], new], ignore_index=True)


def _link(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, dest)
