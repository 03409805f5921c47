"""Fixtures for the reliability tests: moto's S3 server (from tests/data), the tiny H&M layout uploaded to it,
a tiny trained run, and helpers to run `em3` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from em3.config import Config
from em3.train import train
from tests.conftest import with_updates
from tests.data.conftest import s3, s3_endpoint, write_tiny_hm  # noqa: F401 (fixtures shared with tests/data)

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture
def hm_bucket(s3, tmp_path: Path) -> tuple[str, Path]:  # noqa: F811 (s3: the fixture imported above)
    """(bucket, local copy): the tiny H&M layout uploaded under ``s3://<bucket>/hm``."""
    local = write_tiny_hm(tmp_path / "raw")
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"hm/{path.relative_to(local).as_posix()}")
    return bucket, local


@pytest.fixture(scope="session")
def tiny_run(small_config, small_data, tmp_path_factory) -> tuple[Config, Path]:
    """(config, run directory) of a finished training run (metrics/train.json, model/), trained for 3 steps."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    cfg = with_updates(small_config, name="tiny", output_dir=run_dir, train={"max_steps": 3})
    train(cfg, small_data)
    return cfg, run_dir


def write_config(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def run_em3(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m em3 ARGS` as a real process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "em3", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
