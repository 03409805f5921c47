"""The daily dataset (em3.daily) under an ``s3://bucket/prefix``: its parts (``tables/``, ``features/``) kept as
content-addressed objects and one listing per part.

- ``objects/<sha256>``: a file's bytes, written once under its hash. A day run uploads only the files no earlier
  run published (the new day's partition, the tables and manifest that changed), never the whole dataset again.
- ``<part>/current.json``: the part's files (relative path → hash). One PUT replaces it, and S3 reads after a
  write see either the old listing or the new one, never a mix: the part is published whole or not at all.

A fetched file is checked against its hash, and the listing's paths and hashes are checked before anything is
written (a listing is input: no path may leave the destination). Objects that no listing names any more (a
re-ingested day's old partition) stay until removed by hand (``aws s3 rm``); runs add to one dataset one at a time
(a recurring run has no concurrency).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from em3.errors import DataError
from em3.sources import S3Source, check_relative, file_sha256, open_source

LISTING = "current.json"
OBJECTS = "objects"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def fetch_part_s3(dataset_uri: str, part: str, dest: Path, marker: str) -> bool:
    """Download the dataset's ``part`` into ``dest`` (empty or absent), its ``marker`` last, so that a fetch cut
    short never leaves a folder that looks complete; False when the dataset has none yet."""
    dataset = _open(dataset_uri)
    listing = dest.parent / f".{dest.name}.{LISTING}"
    if not dataset.fetch(f"{part}/{LISTING}", listing):
        return False
    try:
        files = _read_listing(listing, f"{dataset.uri}{part}/{LISTING}")
    finally:
        listing.unlink(missing_ok=True)
    for rel, sha in sorted(files.items(), key=lambda file: file[0] == marker):
        target = dest / rel
        if not dataset.fetch(f"{OBJECTS}/{sha}", target):
            raise DataError(f"{dataset.uri}{OBJECTS}/{sha}: missing, though {part}/{LISTING} lists it for {rel}")
        if file_sha256(target) != sha:
            raise DataError(f"{dataset.uri}{OBJECTS}/{sha}: its bytes do not have that hash (a damaged object)")
    return True


def publish_part_s3(folder: Path, dataset_uri: str, part: str, marker: str) -> str:
    """Make ``folder`` (a complete output: it holds ``marker``) the dataset's ``part``; returns where it is."""
    if not (folder / marker).is_file():
        raise DataError(f"{folder}: not a complete {part} output (no {marker}); nothing published")
    dataset = _open(dataset_uri)
    files = {
        path.relative_to(folder).as_posix(): file_sha256(path) for path in sorted(folder.rglob("*")) if path.is_file()
    }
    for rel, sha in files.items():
        key = f"{dataset.prefix}{OBJECTS}/{sha}"
        if dataset.stamp(f"{OBJECTS}/{sha}") is None:  # content-addressed: already there means already these bytes
            with dataset.errors_named(key, "write"):
                dataset.client.upload_file(str(folder / rel), dataset.bucket, key)
    listing = {"files": files, "published": datetime.now(UTC).isoformat(timespec="seconds")}
    key = f"{dataset.prefix}{part}/{LISTING}"
    with dataset.errors_named(key, "write"):
        dataset.client.put_object(Bucket=dataset.bucket, Key=key, Body=json.dumps(listing, indent=1).encode())
    return f"{dataset.uri}{part}"


def _open(dataset_uri: str) -> S3Source:
    dataset = open_source(dataset_uri)
    if not isinstance(dataset, S3Source):
        raise DataError(f"{dataset_uri}: not an s3://bucket/prefix")
    return dataset


def _read_listing(path: Path, name: str) -> dict[str, str]:
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{name}: not a listing of the dataset's files ({{'files': {{path: sha256}}}})") from None
    for rel, sha in files.items():
        check_relative(rel, name)
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise DataError(f"{name}: {rel!r} has no sha256 hash ({sha!r})")
    return files
