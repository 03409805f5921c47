"""A daily run of the pipeline (DESIGN §6, continuous training): the day it adds and the dataset it adds it to.

A run with a run date (a date, or ``scheduled``: the schedule time of a recurring run) adds the day before its run
date, a whole day of logs, to the dataset kept between runs at ``dataset_uri`` (a folder the pods share, or an
``s3://bucket/prefix``: em3.daily_s3):

- ingest starts from the dataset's tables and adds the day as its partition (``ingest.days``);
- validate publishes the tables back only when they pass: a day that fails (a drift check set to ``fail``) leaves
  the dataset as it was, and can be ingested again once mended;
- features starts from the dataset's token store, so that only new or changed items are encoded, and publishes it.

A run without a run date ingests the whole source, and with a ``dataset_uri`` it (re)starts that dataset. Training
takes its windows from the newest day (``data.split: newest_days``), starts from the champion (``train.init_from``),
and the gate compares the two on the newest day (``registry.rescore_champion``): those are config settings.
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

from em3.atomic import staged_dir
from em3.config import ConfigError

S3 = "s3://"
SCHEDULED = "scheduled"  # run_date: the recurring run's schedule time (KFP's schedule-time placeholder)
TABLES, FEATURES = "tables", "features"
MARKERS = {TABLES: "manifest.json", FEATURES: "index.json"}  # what marks a complete part (em3.atomic.staged_dir)


def day_of_run(run_date: str, scheduled_time: str = "") -> date | None:
    """The day a run adds: the day before its run date (``YYYY-MM-DD`` or an RFC 3339 time; ``scheduled``: the
    schedule time); None without a run date (the whole source)."""
    if not run_date:
        return None
    text = scheduled_time if run_date == SCHEDULED else run_date
    if run_date == SCHEDULED and (not text or text.startswith("{{")):
        raise ConfigError(
            "run_date 'scheduled' takes the schedule time of a recurring run (em3 pipeline schedule); this run has "
            f"none ({text!r}): give the run date (YYYY-MM-DD)"
        )
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"run_date {text!r}: expected a date (YYYY-MM-DD) or an RFC 3339 time") from None
    return moment.date() - timedelta(days=1)


def fetch_part(dataset_uri: str, part: str, dest: Path) -> bool:
    """Start ``dest`` (empty or absent) from the dataset's ``part`` (TABLES or FEATURES), linked where the file
    system allows (the dataset's files are replaced, never written in place) or downloaded from S3
    (em3.daily_s3); False when the dataset has none yet."""
    if dataset_uri.startswith(S3):
        from em3.daily_s3 import fetch_part_s3

        return fetch_part_s3(dataset_uri, part, dest, MARKERS[part])
    source = Path(dataset_uri) / part
    if not (source / MARKERS[part]).is_file():
        return False
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, dirs_exist_ok=True, copy_function=_link_or_copy)
    return True


def publish_part(folder: Path, dataset_uri: str, part: str) -> str:
    """Replace the dataset's ``part`` with ``folder``, whole or not at all; returns where it is."""
    if dataset_uri.startswith(S3):
        from em3.daily_s3 import publish_part_s3

        return publish_part_s3(folder, dataset_uri, part, MARKERS[part])
    target = Path(dataset_uri) / part
    with staged_dir(target, MARKERS[part]) as stage:
        shutil.copytree(folder, stage, dirs_exist_ok=True, copy_function=_link_or_copy)
    return str(target)


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system
        shutil.copy2(source, dest)
