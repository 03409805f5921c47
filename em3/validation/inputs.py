"""Stage guards: ``features`` and ``train`` run only on tables that passed validation and come from the configured
source (DESIGN §4; a failed ingest leaves the previous tables in place, so tables on disk can be another source's).

``validate`` records in its report which tables it checked (the sha256 of their ``manifest.json`` and its source);
a later stage compares that record with the tables it is given. Problems, each stopping the stage:

- the tables have no manifest (not written by ``em3 ingest``);
- the manifest's source differs from ``ingest.source``;
- the tables are stale: the latest ingest into their folder failed, or a source file changed since ingest read it
  (em3.validation.freshness);
- there is no validation report, it is unreadable, it failed, or it checked other tables (stale: ingest ran again,
  or the report predates this record).

``data.allow_unvalidated`` (``--allow-unvalidated``) lets the stage run anyway and says so loudly on stderr.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from em3.errors import DataError
from em3.validation.contract import MANIFEST, read_manifest
from em3.validation.freshness import freshness_problems

REPORT = "report.json"
RECORD = "tables_manifest"  # the report's key holding what validate checked
OVERRIDE = "--allow-unvalidated (data.allow_unvalidated: true)"


def same_source(a: str, b: str) -> bool:
    """Two source strings name the same place (``data/raw`` = ``./data/raw/``; URLs up to a trailing slash)."""
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def validated_tables(data_dir: Path, manifest: dict[str, Any], source: str | None) -> dict[str, str]:
    """What ``validate`` records of the tables it checks; a DataError when the manifest's source is not ``source``
    (None: not compared)."""
    recorded = str(manifest.get("source"))
    if source is not None and not same_source(recorded, source):
        raise DataError(
            f"{Path(data_dir) / MANIFEST}: the tables were ingested from {recorded!r}, but ingest.source is "
            f"{source!r}; run `em3 ingest` for this source (a failed ingest leaves the previous tables in place)"
        )
    return {"manifest_sha256": manifest_digest(data_dir), "source": recorded}


def manifest_digest(data_dir: Path) -> str:
    return hashlib.sha256((Path(data_dir) / MANIFEST).read_bytes()).hexdigest()


def input_problems(tables_dir: Path, validation_dir: Path, source: str) -> list[str]:
    """Why the tables at ``tables_dir`` may not be used (empty: they may)."""
    tables_dir, validation_dir = Path(tables_dir), Path(validation_dir)
    try:
        manifest = read_manifest(tables_dir)
        validated_tables(tables_dir, manifest, source)
    except DataError as exc:
        return [str(exc)]
    if stale := freshness_problems(tables_dir, manifest):
        return stale
    report_path = validation_dir / REPORT
    if not report_path.is_file():
        return [f"{report_path}: no validation report for the tables in {tables_dir}; run `em3 validate`"]
    try:
        report = json.loads(report_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{report_path}: unreadable validation report ({exc}); run `em3 validate`"]
    problems = []
    if report.get("passed") is not True:
        problems.append(f"{report_path}: the tables in {tables_dir} failed validation (see report.md there)")
    record = report.get(RECORD) or {}
    if record.get("manifest_sha256") != manifest_digest(tables_dir):
        problems.append(
            f"{report_path}: stale, it validated other tables than {tables_dir} (ingest ran since); run `em3 validate`"
        )
    return problems


def check_stage_inputs(stage: str, tables_dir: Path, validation_dir: Path, source: str, allow: bool) -> None:
    """Stop ``stage`` with a one-line DataError when its tables may not be used, unless ``allow``: then warn loudly."""
    problems = input_problems(tables_dir, validation_dir, source)
    if not problems:
        return
    if not (Path(tables_dir) / MANIFEST).is_file():  # no tables: nothing that the override could run on
        raise DataError(f"{stage} refused: {'; '.join(problems)}")
    if not allow:
        raise DataError(f"{stage} refused: {'; '.join(problems)}. To run anyway: {OVERRIDE}")
    message = f"WARNING: em3 {stage} runs on unchecked inputs because of {OVERRIDE}: {'; '.join(problems)}"
    print(message, file=sys.stderr, flush=True)  # once, and not also through logging, which prints to stderr too
