"""The pipeline in containers: how a config and the pipeline are made ready for them (no engine needed), then,
marked ``container`` (``make test-containers``: a Docker engine and ``make image`` first), the image itself, the
whole pipeline through kfp.local's DockerRunner in it, and a task that fails inside its container."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from em3.cli import main
from em3.cluster import EM3_GPU_IMAGE, EM3_IMAGE
from em3.config import ConfigError, parse_config
from em3.containers import container_config, on_cpu_image, run_container
from em3.registry import history
from pipelines.em3_pipeline import em3_pipeline
from tests.pipelines.conftest import TINY

REPO = Path(__file__).resolve().parents[2]
IMAGE_UID = 10001  # the Dockerfile's user
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def images(pipeline) -> dict[str, str]:
    return {name: e["container"]["image"] for name, e in pipeline.pipeline_spec.deployment_spec["executors"].items()}


def test_container_config_puts_the_default_mlflow_store_under_the_pipeline_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    cfg = container_config(parse_config({"ingest": {"source": "root/raw"}}), root, synthetic=False)
    assert cfg.registry.tracking_uri == f"sqlite:///{root}/mlflow.db"
    assert cfg.registry.artifact_location == str(root / "mlartifacts")
    assert cfg.ingest.source == str(root / "raw"), "relative to the current directory, made absolute"

    remote = {"tracking_uri": "http://mlflow:5000", "artifact_location": "s3://bucket/mlflow"}
    cfg = container_config(parse_config({"registry": remote, "ingest": {"source": "s3://b/raw"}}), root, False)
    assert (cfg.registry.tracking_uri, cfg.registry.artifact_location, cfg.ingest.source) == (
        "http://mlflow:5000",
        "s3://bucket/mlflow",
        "s3://b/raw",
    )


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("registry.tracking_uri", {"registry": {"tracking_uri": "sqlite:///elsewhere/mlflow.db"}}),
        ("registry.artifact_location", {"registry": {"artifact_location": "file:///tmp/elsewhere"}}),
        ("ingest.source", {"ingest": {"source": "data/raw"}}),
    ],
)
def test_container_config_rejects_local_paths_the_containers_cannot_see(tmp_path, monkeypatch, key, values):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: /\S+ is outside the pipeline root {tmp_path}/root"):
        container_config(parse_config(values), tmp_path / "root", synthetic=False)


def test_synthetic_runs_do_not_need_ingest_source(tmp_path):
    cfg = container_config(parse_config({"ingest": {"source": "/elsewhere"}}), tmp_path, synthetic=True)
    assert cfg.ingest.source == "/elsewhere"


def test_every_task_runs_in_the_cpu_image_and_the_pipeline_is_left_alone():
    pipeline = em3_pipeline
    assert set(images(on_cpu_image(pipeline)).values()) == {EM3_IMAGE}
    assert images(pipeline)["exec-train"] == EM3_GPU_IMAGE != EM3_IMAGE, "the compiled pipeline keeps the GPU image"


def test_without_an_engine_the_run_stops_with_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    command = ["pipeline", "run", "--local", "--runner", "docker", "--synthetic", "--pipeline-root", str(tmp_path)]
    assert main(command) == 2
    assert capsys.readouterr().err.startswith("em3 pipeline: error: no Docker engine (")


# --- with the engine -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    docker = pytest.importorskip("docker")
    try:
        engine = docker.from_env()
        engine.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the container stage needs a Docker engine (DOCKER_HOST): {exc}")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def image(client):
    return client.images.get(EM3_IMAGE)  # built by `make image` (make test-containers does it first)


def in_image(client, script: str) -> dict:
    """Run a Python ``script`` in the image; it prints one JSON document."""
    return json.loads(client.containers.run(EM3_IMAGE, ["python3", "-c", script], remove=True))


@pytest.mark.container
def test_image_is_em3_as_a_wheel_run_by_a_non_root_user_with_labels(client, image):
    config = image.attrs["Config"]
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    labels = config["Labels"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == commit and len(commit) == 40

    facts = in_image(
        client,
        """
import json, os, shutil, sys, sysconfig
from importlib import metadata
import em3, kfp
site = sysconfig.get_paths()["purelib"]
dist = metadata.distribution("em3")
paths = [os.path.join(d, n) for top in ("/opt", "/home", "/root", "/src", "/tmp") for d, dirs, files in os.walk(top)
         for n in dirs + files]
found = [p for p in paths if os.path.basename(p) in ("tests", ".cache", "wheels") or p.endswith((".whl", "torch/test"))
         or not p.startswith(site) and p.endswith((".parquet", ".csv", ".jpg", ".db", ".safetensors"))]
print(json.dumps({"uid": os.getuid(), "em3": em3.__file__, "site": site, "kfp": kfp.__version__,
                  "direct_url": dist.read_text("direct_url.json"), "found": found,
                  "tools": [t for t in ("gcc", "cc", "make", "uv", "git") if shutil.which(t)]}))
""",
    )
    assert facts["uid"] == IMAGE_UID
    assert facts["em3"] == f"{facts['site']}/em3/__init__.py", "installed in site-packages, not a checkout"
    assert facts["direct_url"] is None or "editable" not in facts["direct_url"]
    assert facts["kfp"] == "2.17.3", "kfp is in the image: components run with install_kfp_package=False"
    assert facts["found"] == [], "no tests, caches, wheels or data in the image"
    assert facts["tools"] == [], "no build tools in the final image"


@pytest.mark.container
def test_a_failing_container_is_reported_with_its_exit_status(client, capsys):
    """kfp 2.17.3's own runner reports a fast-failing container as a success now and then (the container is gone
    before its status is read); run_container, which the pipeline uses, always reads it."""
    label = {"em3.test": "exit-status"}
    statuses = [
        run_container(client, EM3_IMAGE, ["sh", "-c", "echo failing >&2; exit 3"], {}, labels=label) for _ in range(12)
    ]
    assert statuses == [3] * 12
    assert run_container(client, EM3_IMAGE, ["true"], {}, labels=label) == 0
    assert capsys.readouterr().out.count("failing") == 12, "the container's log is streamed"
    assert client.containers.list(all=True, filters={"label": "em3.test=exit-status"}) == [], "containers removed"


def run_in_containers(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``em3 pipeline run --local --runner docker`` on the tiny config (MLflow on the embedded defaults)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "registry": {"min_auc": 0.0}}))
    command = [
        sys.executable,
        "-m",
        "em3",
        "pipeline",
        "run",
        "--local",
        "--runner",
        "docker",
        "--config",
        str(config),
        "--pipeline-root",
        str(tmp_path / "root"),
        *args,
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, "EM3_IMAGE": EM3_IMAGE}
    )
    done.stdout, done.stderr = ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)
    return done


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


@pytest.mark.container
def test_whole_pipeline_in_containers_writes_metrics_and_registers_a_version(client, image, tmp_path):
    done = run_in_containers(tmp_path, "--synthetic", "--variants", "em3")  # every stage; one training task
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    root = tmp_path / "root"
    assert root.stat().st_uid == (IMAGE_UID if os.getuid() == 0 else os.getuid()), "tasks ran as the image's user"
    assert (root / "mlflow.db").stat().st_uid == root.stat().st_uid, "register wrote the store from its container"

    run_dir = only(sorted(root.glob("em3-2*")))
    evaluation = json.loads(only(list(run_dir.glob("evaluate/metrics"))).read_text())
    values = {key: evaluation[f"em3_din.{key}"] for key in ("auc", "gauc", "logloss", "cold_auc")}
    assert all(math.isfinite(value) for value in values.values()), values
    assert 0 < values["auc"] < 1 and 0 < values["gauc"] < 1 and values["logloss"] > 0, values
    trained = json.loads(only(list(run_dir.glob("for-loop-*/train/metrics"))).read_text())
    assert trained["test_auc"] == pytest.approx(values["auc"]), "train and evaluate agree on the same test split"

    registered = re.search(r"Registered: (\w+) \(best validation AUC\) as em3 version 1 → champion", done.stdout)
    assert registered, done.stdout[-2000:]
    cfg = parse_config({"registry": {"tracking_uri": f"sqlite:///{root}/mlflow.db"}})
    (version,) = history(cfg)  # the MLflow store the register task wrote, read here
    assert version["version"] == 1 and version["aliases"] == ["champion"]
    assert float(version["tags"]["test_auc"]) == pytest.approx(evaluation[f"{registered[1]}.auc"])
    assert re.fullmatch(r"[0-9a-f]{64}", version["tags"]["data_hash"])
    assert list((root / "mlartifacts").rglob("model.safetensors")), "the model's files are in the MLflow artifacts"
    assert f"mlflow ui --backend-store-uri sqlite:///{root}/mlflow.db" in done.stdout


@pytest.mark.container
def test_a_task_failing_in_its_container_fails_the_run_with_its_error(client, image, tmp_path):
    missing = tmp_path / "root" / "no-such-raw-data"
    done = run_in_containers(tmp_path, "--set", f"ingest.source={missing}")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert f"DataError: {missing}: source folder not found" in output, "the component's own error, from its log"
    assert "Task 'ingest' finished with status FAILURE" in output
    assert re.search(
        r"em3 pipeline: error: Pipeline 'em3' finished with status FAILURE\. Inner task failed: "
        r"'ingest'",
        done.stderr,
    ), done.stderr[-2000:]
    assert not list((tmp_path / "root").glob("em3-2*/validate")), "no task ran after the failed one"
