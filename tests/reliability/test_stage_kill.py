"""`em3 ingest` killed with SIGKILL half way (reading from a slow S3): no output that looks complete is left, only
a hidden staging folder; running the stage again gives the output of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.data.conftest import HM_SPLIT, ingest
from tests.reliability.conftest import run_em3, write_config
from tests.reliability.fault_proxy import FaultProxy
from tests.reliability.test_s3_faults import files


@pytest.mark.slow
def test_sigkilled_ingest_leaves_no_output_and_a_rerun_is_clean(hm_bucket, s3_endpoint, tmp_path):
    bucket, _ = hm_bucket
    out = tmp_path / "work" / "tables"
    config = write_config(
        tmp_path / "ingest.yaml",
        {
            "ingest": {"source": f"s3://{bucket}/hm", **HM_SPLIT, "negatives_per_positive": 2},
            "data": {"tables_dir": str(out)},
        },
    )
    with FaultProxy(s3_endpoint, fraction=0.0, delay_s=0.2) as slow:
        process = subprocess.Popen(
            [sys.executable, "-m", "em3", "ingest", "--config", str(config)],
            env={**os.environ, "AWS_ENDPOINT_URL": slow.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not list(out.parent.glob(".tables.*.tmp")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # inside the stage: downloading the tables
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
        requests_before_kill = slow.requests
    assert process.returncode == -signal.SIGKILL, stderr
    assert 0 < requests_before_kill < 30  # killed half way through the 30 reads of the layout
    left = sorted(path.name for path in out.parent.iterdir())
    assert not out.exists() and len(left) == 1 and left[0].startswith(".tables."), left

    rerun = run_em3("ingest", "--config", str(config))
    assert rerun.returncode == 0, rerun.stderr
    ingest(f"s3://{bucket}/hm", tmp_path / "reference")  # the same settings, never interrupted
    again, clean = files(out), files(tmp_path / "reference")
    manifests = [json.loads(found.pop("manifest.json")) for found in (again, clean)]
    for manifest in manifests:
        manifest.pop("created_utc")
    assert manifests[0] == manifests[1] and again == clean
