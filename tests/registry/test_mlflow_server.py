"""Against a real `mlflow server` (SQLite backend, artifacts proxied to moto's S3 server): log, register, load."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from mlflow import MlflowClient
from moto.server import ThreadedMotoServer

from em3.registry import load, log_run, register
from tests.conftest import stop_process_group, wait_until_up, with_updates
from tests.registry.conftest import assert_same_predictions
from tests.registry.race import assert_serialised, race_register

BUCKET = "em3-mlflow"
KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAEM3TESTKEY00001",
    "AWS_SECRET_ACCESS_KEY": "em3-test-secret-do-not-log",
    "AWS_DEFAULT_REGION": "us-east-1",
}
URL_PASSWORD = "em3-url-token-do-not-log"
SECRETS = (KEYS["AWS_ACCESS_KEY_ID"], KEYS["AWS_SECRET_ACCESS_KEY"], URL_PASSWORD)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(tracking URI with user info, S3 client): moto's S3 in-process, `mlflow server` as a subprocess."""
    root = tmp_path_factory.mktemp("mlflow_server")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    host, port = moto.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name=KEYS["AWS_DEFAULT_REGION"],
        aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=BUCKET)
    env = {
        **os.environ,
        **KEYS,
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # its background job runner doubles the start-up time
    }
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--artifacts-destination", f"s3://{BUCKET}/mlflow"]
    log = root / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, log, "mlflow server")
        yield f"http://em3:{URL_PASSWORD}@127.0.0.1:{port}", s3
    finally:
        stop_process_group(process)
        moto.stop()


@pytest.fixture(scope="module")
def registered(server, trained_runs):
    """The best tiny run logged (with the AWS keys in the environment) and registered."""
    uri, _ = server
    best = trained_runs[0]
    cfg = with_updates(best.cfg, registry={"tracking_uri": uri, "min_auc": 0.0})
    with pytest.MonkeyPatch.context() as patch:
        for key, value in KEYS.items():
            patch.setenv(key, value)
        run_id = log_run(cfg, best.run_dir, data_hash="d1")
    return cfg, run_id, register(cfg, run_id)


def test_register_and_load_by_alias_through_the_server(registered, server, trained_runs, small_data):
    cfg, run_id, decided = registered
    assert (decided["version"], decided["alias"]) == (1, "champion")
    keys = [item["Key"] for item in server[1].list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(key.endswith(f"{run_id}/artifacts/model/model.safetensors") for key in keys), keys
    assert_same_predictions(load("models:/em3@champion", cfg.registry), trained_runs[0], small_data)


def test_credentials_never_reach_mlflow(registered, tmp_path):
    cfg, run_id, _ = registered
    mlflow = MlflowClient(tracking_uri=cfg.registry.tracking_uri, registry_uri=cfg.registry.tracking_uri)
    run, model = mlflow.get_run(run_id), mlflow.get_registered_model("em3")
    recorded = [run.data.params, run.data.tags, run.data.metrics, mlflow.get_model_version("em3", "1").tags, model.tags]
    text = repr(recorded)
    assert run.data.params["registry.tracking_uri"].startswith("http://***@127.0.0.1:")
    artifacts = Path(mlflow.download_artifacts(run_id, "", str(tmp_path)))
    files = [path for path in artifacts.rglob("*") if path.is_file()]
    assert len(files) == 5  # the run config; the model: weights, config, shapes, ids
    blobs = [path.read_bytes() for path in files]
    for secret in SECRETS:
        assert secret not in text
        assert not any(secret.encode() in blob for blob in blobs), secret


@pytest.mark.slow
def test_racing_register_processes_through_the_server(registered, server, trained_runs, tmp_path):
    """Real `em3 register` processes (AWS keys in their environment) racing through the server: serialised, and
    no secret in anything they print."""
    uri, _ = server
    better, worse = trained_runs
    cfg = with_updates(better.cfg, registry={"tracking_uri": uri, "min_auc": 0.0, "model_name": "race"})
    done = race_register(cfg, [worse.run_dir, better.run_dir, worse.run_dir], tmp_path, env=KEYS)
    for process in done:
        assert process.returncode == 0, process.stderr[-3000:]
        for secret in SECRETS:
            assert secret not in process.stdout + process.stderr
    mlflow = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert_serialised(mlflow, cfg, 3)
    assert "race.lock" not in {model.name for model in mlflow.search_registered_models()}
