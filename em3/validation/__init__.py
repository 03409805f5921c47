"""Data validation (Great Expectations 1.x): raw-input suites run by ingest, canonical suites run by the
`validate` stage, row quarantine with reasons, and a threshold with a readable report.
"""

from em3.errors import DataError
from em3.validation.stage import run_validate

__all__ = ["DataError", "run_validate"]
