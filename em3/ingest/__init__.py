"""The `ingest` stage: raw purchase or impression logs (local or S3) -> checked, canonical Parquet tables."""

from em3.ingest.pipeline import run_ingest
from em3.validation.errors import DataError

__all__ = ["DataError", "run_ingest"]
