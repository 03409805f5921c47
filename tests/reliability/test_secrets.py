"""Credentials come from the environment and go nowhere else: `em3 ingest` from S3 and `em3 register` to MLflow
with an S3 artifact store, run as real processes with test AWS keys in their environment, leave the keys in none of
their outputs (what they print, the files they write, the MLflow store, the S3 objects); MLflow failures are
clear errors with any URL password hidden."""

from __future__ import annotations

import socket
import uuid

from tests.reliability.conftest import run_em3, write_config

KEYS = {"AWS_ACCESS_KEY_ID": "AKIAEM3RELIABILITY01", "AWS_SECRET_ACCESS_KEY": "em3-reliability-secret-never-log"}


def s3_objects(s3, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_ingest_and_register_leave_the_keys_nowhere(hm_bucket, tiny_run, s3, s3_endpoint, tmp_path):
    raw_bucket, _ = hm_bucket
    artifacts_bucket = f"mlflow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=artifacts_bucket)
    cfg, run_dir = tiny_run
    work = tmp_path / "work"
    work.mkdir()
    values = cfg.model_dump(mode="json")
    values["ingest"] = {"source": f"s3://{raw_bucket}/hm", "valid_start": "2020-03-01", "test_start": "2020-06-01"}
    values["data"]["tables_dir"] = str(work / "tables")
    values["registry"] |= {
        "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        "min_auc": 0.0,
        "artifact_location": f"s3://{artifacts_bucket}/artifacts",
    }
    config = write_config(tmp_path / "config.yaml", values)
    env = {**KEYS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}

    ingested = run_em3("ingest", "--config", str(config), env=env)
    registered = run_em3("register", "--config", str(config), "--run", str(run_dir), "--data-hash", "d1", env=env)

    assert ingested.returncode == 0, ingested.stderr
    assert registered.returncode == 0, registered.stderr
    assert "em3 version 1 → champion" in registered.stdout
    written = {path: path.read_bytes() for path in work.rglob("*") if path.is_file()}
    stored = {**s3_objects(s3, raw_bucket), **s3_objects(s3, artifacts_bucket)}
    assert {"tables/manifest.json", "tables/items.parquet", "mlflow.db"} <= {
        path.relative_to(work).as_posix() for path in written
    }
    assert any(key.endswith("artifacts/model/model.safetensors") for key in stored)
    assert f"s3://{raw_bucket}/hm".encode() in written[work / "tables" / "manifest.json"]  # the search sees content
    for secret in KEYS.values():
        assert secret not in ingested.stdout + ingested.stderr + registered.stdout + registered.stderr
        assert not [path for path, blob in written.items() if secret.encode() in blob], secret
        assert not [key for key, blob in stored.items() if secret.encode() in blob], secret


def test_an_unreachable_mlflow_server_is_a_clear_error_without_the_url_password(tmp_path):
    with socket.socket() as probe:  # a port with nothing behind it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://em3:url-password-never-log@127.0.0.1:{port}"
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    done = run_em3("models", "--set", f"registry.tracking_uri={uri}", env=env)
    assert done.returncode == 2, done.stderr
    assert f"em3 models: error: MLflow: API request to http://***@127.0.0.1:{port}/" in done.stderr
    assert "url-password-never-log" not in done.stdout + done.stderr and "Traceback" not in done.stderr
