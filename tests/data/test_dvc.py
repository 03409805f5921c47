"""`dvc repro` of the whole dataset-and-model pipeline in a temporary git repo, on tiny synthetic data."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from em3.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = {
    "raw_synthetic": {"n_users": 40, "n_items": 60, "n_purchases": 600, "image_size": 48},
    "features": {"image_size": 64, "batch_size": 16, "progress": False},
    "data": {"source": "tables", "max_history": 10},
    "model": {
        "embed_dim": 8,
        "mlp_hidden": [16],
        "attention_hidden": [8],
        "cic_dim": 8,
        "fqformer": {"d_model": 16, "n_heads": 2},
    },
    "train": {"epochs": 2, "batch_size": 128, "progress": False},
    "evaluate": {"k_neighbours": 3},
}


def dvc(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    environment = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    done = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=repo, env=environment, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repo holding our dvc.yaml and params.yaml (tiny sizes), and the em3 sources stages depend on."""
    repo = tmp_path_factory.mktemp("dvc_repo")
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / "em3", repo / "em3", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data_validation", repo / "data_validation")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # the shipped parameters, made tiny
    for section, values in TINY.items():
        params[section] = {**params.get(section, {}), **values}
    parse_config(params, "params.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "t@example.com"],
        ["git", "config", "user.name", "t"],
    ):
        subprocess.run(command, cwd=repo, check=True)
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def test_repro_runs_every_stage_then_nothing_then_only_what_a_parameter_touches(repo):
    first = stages_run(dvc(repo, "repro"))
    variants = {"train@id_only", "train@two_stage", "train@em3"}
    assert first == {"generate", "ingest", "validate", "features", "evaluate"} | variants
    for output in (
        "data/tables/manifest.json",
        "data/features/index.json",
        "data/validation/report.json",
        "runs/em3/model/model.safetensors",
        "metrics/evaluate.json",
        "metrics/plots/roc.png",
    ):
        assert (repo / output).is_file(), output
    metrics = yaml.safe_load((repo / "metrics" / "evaluate.json").read_text())
    assert set(metrics["models"]) == {"id_only_din", "two_stage_din", "em3_din"}

    assert stages_run(dvc(repo, "repro")) == set()

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.002
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert stages_run(dvc(repo, "repro")) == variants | {"evaluate"}
    assert "Data and pipelines are up to date" in dvc(repo, "status")


def test_push_and_pull_through_an_s3_remote_restore_the_data(repo, s3, s3_endpoint):
    if not (repo / "dvc.lock").exists():
        dvc(repo, "repro")
    s3.create_bucket(Bucket="em3-dvc")
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    dvc(repo, "remote", "add", "-f", "-d", "s3remote", "s3://em3-dvc/cache")
    dvc(repo, "remote", "modify", "s3remote", "endpointurl", s3_endpoint)
    before = digest(repo / "data" / "tables")
    dvc(repo, "push", env=env)
    assert s3.list_objects_v2(Bucket="em3-dvc")["KeyCount"] > 0

    shutil.rmtree(repo / "data" / "tables")
    shutil.rmtree(repo / ".dvc" / "cache")
    dvc(repo, "pull", "ingest", env=env)
    assert digest(repo / "data" / "tables") == before


def test_an_edited_suite_file_changes_only_the_stage_that_runs_it(repo):
    if not (repo / "dvc.lock").exists():
        dvc(repo, "repro")
    path = repo / "data_validation" / "canonical" / "users.json"
    original = path.read_text()
    path.write_text(original.replace('"max_value": 120', '"max_value": 110'))
    try:
        status = dvc(repo, "status")
    finally:
        path.write_text(original)
    assert re.search(r"^validate:\n\s+changed deps:\n\s+modified:\s+data_validation/canonical$", status, re.M), status
    assert "ingest:" not in status
