"""Writing stage outputs: everything goes to a fresh staging directory that replaces the output directory only
when the stage succeeds, so a crash never leaves complete-looking partial output.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from em3.validation.errors import DataError


@contextmanager
def staged_dir(final: Path, marker: str) -> Iterator[Path]:
    """A new directory that replaces ``final`` when the block succeeds and is deleted when it fails.

    An existing ``final`` is replaced only when it is empty or holds ``marker`` (it is a previous output).
    """
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


def write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def write_json(value: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n")
