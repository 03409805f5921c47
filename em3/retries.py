"""Retries of S3 requests (throttling such as 503 SlowDown, other 5xx, dropped connections), set in one place.

botocore's ``standard`` mode with 10 attempts in all (the first one included) by default; the standard AWS
variables ``AWS_RETRY_MODE`` (legacy, standard, adaptive) and ``AWS_MAX_ATTEMPTS`` change both. em3's own boto3
client (ingest) gets them as a ``botocore.config.Config``. MLflow's S3 client (artifact upload and download in
register and load) is built by MLflow and reads only those variables, so the registry fills in the defaults
where they are unset (``set_s3_retry_defaults``).
"""

from __future__ import annotations

import os
from typing import Any

from em3.config import ConfigError

RETRY_MODE, MAX_ATTEMPTS = "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"
DEFAULTS = {RETRY_MODE: "standard", MAX_ATTEMPTS: "10"}
MODES = ("legacy", "standard", "adaptive")


def s3_retries() -> tuple[str, int]:
    """(mode, attempts in all) from the environment, else the defaults; a bad value is a ConfigError."""
    mode = os.environ.get(RETRY_MODE) or DEFAULTS[RETRY_MODE]
    attempts = os.environ.get(MAX_ATTEMPTS) or DEFAULTS[MAX_ATTEMPTS]
    if mode not in MODES:
        raise ConfigError(f"{RETRY_MODE}={mode!r}: expected one of {', '.join(MODES)}")
    if not attempts.isdigit() or int(attempts) < 1:
        raise ConfigError(f"{MAX_ATTEMPTS}={attempts!r}: expected a whole number of attempts >= 1 (the first included)")
    return mode, int(attempts)


def s3_client_config() -> Any:
    """A ``botocore.config.Config`` with the retry settings, for the boto3 clients em3 creates."""
    from botocore.config import Config

    mode, attempts = s3_retries()
    return Config(retries={"mode": mode, "total_max_attempts": attempts})


def set_s3_retry_defaults() -> None:
    """Put the default retry settings in the environment where unset, for S3 clients that others build (MLflow)."""
    s3_retries()  # refuse a bad value here, with a clear error, rather than deep inside MLflow
    for name, value in DEFAULTS.items():
        if not os.environ.get(name):
            os.environ[name] = value
