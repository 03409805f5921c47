"""Tables that no longer match their source are refused (DESIGN §4: nothing stale).

Ingest records, per source file it read, a stamp of the version it read (em3.sources: a local file's sha256; an
S3 object's ETag, size and last-modified time, taken before the download). ``validate`` and the input guards of
``features`` and ``train`` compare those stamps with the source as it is now, and refuse the tables when a file
changed or is gone, naming the file and both stamps. Photos are not compared (ingest copied them and recorded
their sha256 beside the copies; validate checks the copies).

A failed ingest leaves the previous tables in place (they are still a complete output) but marks them stale
(``STALE.json``, with the failure), so that nothing downstream takes them for the source's current tables; the
next successful ingest replaces the folder, marker included.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from em3.atomic import write_json
from em3.errors import DataError
from em3.sources import open_source
from em3.validation.contract import MANIFEST

STALE = "STALE.json"


def mark_stale(tables_dir: Path, failure: str) -> None:
    """Record on a previous ingest output (if any) that the latest ingest into it failed with ``failure``."""
    tables_dir = Path(tables_dir)
    if (tables_dir / MANIFEST).is_file():
        when = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(tables_dir / STALE, {"failed_utc": when, "failure": failure})


def freshness_problems(tables_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Why the tables in ``tables_dir`` (whose manifest is ``manifest``) are not current: a failed ingest since,
    or source files that changed since ingest read them (empty: current)."""
    tables_dir = Path(tables_dir)
    problems = []
    if (tables_dir / STALE).is_file():
        failure = (tables_dir / STALE).read_text()
        problems.append(
            f"{tables_dir}: the latest `em3 ingest` into this folder failed ({failure.strip()}); these tables are "
            "from an earlier run: fix the source and run `em3 ingest` again"
        )
    source_uri = str(manifest.get("source"))
    stamps = manifest.get("source_stamps")
    if stamps is None:  # written before stamps were recorded: a local source's files can still be compared by hash
        if source_uri.startswith("s3://"):
            return [*problems, f"{tables_dir / MANIFEST}: no stamps of the S3 source's files; run `em3 ingest` again"]
        stamps = {rel: {"sha256": sha} for rel, sha in manifest.get("files", {}).items()}
    if not stamps:
        return problems
    try:
        source = open_source(source_uri)
        now = {rel: source.stamp(rel) for rel in stamps}
    except DataError as exc:
        return [*problems, f"cannot compare the tables in {tables_dir} with their source: {exc}"]
    for rel, then in stamps.items():
        if now[rel] != then:
            problems.append(
                f"{source_uri.rstrip('/')}/{rel}: changed since ingest built the tables in {tables_dir} "
                f"({_describe(then)} at ingest, {_describe(now[rel])} now); run `em3 ingest` again"
            )
    return problems


def _describe(stamp: dict[str, Any] | None) -> str:
    if stamp is None:
        return "no such file"
    return ", ".join(f"{key} {value}" for key, value in stamp.items())
