"""S3 throttling, 5xx and dropped connections, injected on the real network path by a proxy in front of moto's
server: ingest and the MLflow artifact upload retry them and produce exactly what they produce without faults;
past the retry budget the error names the object, and the CLI prints it without a traceback."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from em3.config import ConfigError
from em3.ingest import DataError
from em3.registry import log_run
from em3.retries import s3_client_config
from em3.validation.contract import interaction_files
from tests.data.conftest import ingest
from tests.registry.conftest import with_registry
from tests.reliability.conftest import run_em3, write_config
from tests.reliability.fault_proxy import FAULTS, FaultProxy

SEED = 37  # with it, ingest meets each kind of fault once and the artifact upload 2 drops and a cut


def files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_ingest_through_faults_gives_byte_identical_output(hm_bucket, s3_endpoint, tmp_path, monkeypatch):
    bucket, _ = hm_bucket
    ingest(f"s3://{bucket}/hm", tmp_path / "clean")
    with FaultProxy(s3_endpoint, fraction=0.15, seed=SEED) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        ingest(f"s3://{bucket}/hm", tmp_path / "faulty")
    assert proxy.injected == dict.fromkeys(FAULTS, 1), proxy.injected  # each kind of fault happened, was retried
    clean, faulty = files(tmp_path / "clean"), files(tmp_path / "faulty")
    days = len(interaction_files(tmp_path / "clean"))  # items, users, a partition per day, manifest, images, sums
    assert clean.keys() == faulty.keys() and len(clean) == 2 + days + 1 + 12 + 1
    manifests = [json.loads(out.pop("manifest.json")) for out in (clean, faulty)]
    for manifest in manifests:
        manifest.pop("created_utc")
    assert manifests[0] == manifests[1]
    for name in clean:
        assert clean[name] == faulty[name], name


def test_ingest_past_the_retry_budget_is_a_data_error_naming_the_object(hm_bucket, s3_endpoint, tmp_path, monkeypatch):
    bucket, _ = hm_bucket
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    for fault, reason in (("slow_down", r"\(503\) after 2 attempts"), ("drop", r"Connection was closed.*2 attempts")):
        with FaultProxy(s3_endpoint, fraction=1.0, faults=(fault,), max_faults_per_request=99) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
            with pytest.raises(DataError, match=rf"s3://{bucket}/hm/articles.csv: cannot read .*{reason}"):
                ingest(f"s3://{bucket}/hm", tmp_path / "out")
        assert proxy.requests == 2 and not (tmp_path / "out").exists()


def test_cli_reports_an_unreachable_s3_without_a_traceback(hm_bucket, s3_endpoint, tmp_path):
    bucket, _ = hm_bucket
    config = write_config(
        tmp_path / "ingest.yaml",
        {"ingest": {"source": f"s3://{bucket}/hm"}, "data": {"tables_dir": str(tmp_path / "tables")}},
    )
    with FaultProxy(s3_endpoint, fraction=1.0, faults=("internal_error",), max_faults_per_request=99) as proxy:
        done = run_em3("ingest", "--config", str(config), env={"AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "3"})
    assert done.returncode == 2, done.stderr
    assert f"em3 ingest: error: s3://{bucket}/hm/articles.csv: cannot read (500) after 3 attempts" in done.stderr
    assert "Traceback" not in done.stderr and proxy.requests == 3 and not (tmp_path / "tables").exists()


def test_retry_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    assert s3_client_config().retries == {"mode": "standard", "total_max_attempts": 10}
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    assert s3_client_config().retries == {"mode": "adaptive", "total_max_attempts": 4}
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match=r"AWS_MAX_ATTEMPTS='many': expected a whole number of attempts >= 1"):
        s3_client_config()


def test_artifact_upload_through_faults_stores_identical_artifacts(tiny_run, s3, s3_endpoint, tmp_path, monkeypatch):
    """MLflow's own boto3 client (an S3 artifact store), configured by the retry defaults em3 sets."""
    cfg, run_dir = tiny_run
    bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    cfg = with_registry(cfg, tmp_path, artifact_location=f"s3://{bucket}/artifacts")
    with FaultProxy(s3_endpoint, fraction=0.3, seed=SEED) as proxy:
        monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", proxy.url)
        run_id = log_run(cfg, run_dir)
    assert proxy.injected == {"drop": 2, "cut": 1}, proxy.injected
    prefix = f"artifacts/{run_id}/artifacts/"
    stored = {
        item["Key"].removeprefix(prefix): s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    }
    assert sorted(stored) == [
        "config.yaml",
        "model/config.yaml",
        "model/ids.json",
        "model/model.safetensors",
        "model/shapes.json",
    ]
    for name in ("config.yaml", "ids.json", "model.safetensors", "shapes.json"):
        assert stored[f"model/{name}"] == (run_dir / "model" / name).read_bytes(), name
