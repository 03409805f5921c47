"""Writes that never leave a complete-looking partial output: temporary file or folder, then a rename."""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it when the block succeeds (and is removed if it fails)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_dir(final: Path, marker: str) -> Iterator[Path]:
    """A new directory that replaces ``final`` when the block succeeds and is deleted when it fails.

    An existing ``final`` is replaced only when it is empty or holds ``marker`` (it is a previous output).
    The staging directory, ``.<final name>.<hex>.tmp`` beside ``final``, outlives the block only when its process
    dies in it (SIGKILL, lost node); the next ``staged_dir`` of the same ``final`` removes such leftovers, and no
    other path. A run still going keeps its staging directory: each run holds an exclusive ``flock`` on its own
    until the block ends, and a leftover is one whose lock is free, the kernel having dropped it with the process.
    This assumes that every process that may stage ``final`` sees the others' locks (one machine, or a shared file
    system with cluster-wide ``flock``); where directories cannot be locked, leftovers stay. Overlapping runs of one
    ``final`` are not made safe otherwise: one of them may still fail when it swaps its directory in.
    """
    from em3.errors import DataError

    final = Path(final)
    if final.is_dir() and any(final.iterdir()) and not (final / marker).exists():
        raise DataError(f"{final}: exists and is not a previous output (no {marker}); refusing to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(final)
    staging, lock = _new_staging(final)
    try:
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        retired = staging.with_suffix(".old")
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        os.close(lock)


TAG_CHARS = 12  # hex digits of the random part of a staging directory's name
DIRECTORY_ONLY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW  # opening a file or a link fails


def _new_staging(final: Path) -> tuple[Path, int]:
    """A new staging directory for ``final`` and a descriptor holding its lock. A clean-up that found the directory
    before it was locked removes it: then it is made again."""
    while True:
        staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:TAG_CHARS]}.tmp")
        staging.mkdir()
        try:
            lock = os.open(staging, DIRECTORY_ONLY)
        except FileNotFoundError:  # removed already
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for such a clean-up to end
        except OSError:  # no directory locks on this file system: no clean-up removes it either
            return staging, lock
        if staging.is_dir():
            return staging, lock
        os.close(lock)


def _remove_abandoned_staging(final: Path) -> None:
    """Remove the staging directories of ``final`` whose lock is free: their process died in its block."""
    staging_name = re.compile(rf"\.{re.escape(final.name)}\.[0-9a-f]{{{TAG_CHARS}}}\.tmp")
    for path in final.parent.iterdir():
        if not staging_name.fullmatch(path.name):
            continue
        try:
            lock = os.open(path, DIRECTORY_ONLY)
        except OSError:  # not a directory, or its run just ended and renamed it
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path, ignore_errors=True)  # under the lock: a new run's folder is seen gone (_new_staging)
        except OSError:  # held by a run still going (or not lockable here: it cannot be told apart from one)
            pass
        finally:
            os.close(lock)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def finite_or_null(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (e.g. no cold rows) is written as null."""
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, value: Any) -> None:
    write_bytes(path, (json.dumps(finite_or_null(value), indent=2, default=str) + "\n").encode())
