"""Writes that never leave a complete-looking partial output: temporary file or folder, then a rename."""

from __future__ import annotations

import json
import math
import os
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
    """
    from em3.validation.errors import DataError

    final = Path(final)
    if final.is_dir() and any(final.iterdir()) and not (final / marker).exists():
        raise DataError(f"{final}: exists and is not a previous output (no {marker}); refusing to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    staging.mkdir()
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
