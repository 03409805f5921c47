"""The `ingest` stage: raw purchase or impression logs (local or S3) -> checked, canonical Parquet tables."""

from em3.errors import DataError
from em3.ingest.pipeline import run_ingest

__all__ = ["DataError", "run_ingest"]
