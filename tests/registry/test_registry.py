"""The registry on a SQLite store: logging, the gate, promote, rollback, history and load."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from em3.registry import RegistryError, history, load, log_run, promote, register, rollback
from tests.registry.conftest import assert_same_predictions, with_registry

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _client(cfg) -> MlflowClient:
    return MlflowClient(tracking_uri=cfg.registry.tracking_uri, registry_uri=cfg.registry.tracking_uri)


def _audited(tags: dict, event: str, reason: str) -> None:
    assert tags[f"{event}_by"] and tags[f"{event}_at"].endswith("+00:00")
    assert reason in tags[f"{event}_reason"]


def test_log_run_records_config_metrics_model_and_plots(trained_runs, tmp_path):
    best = trained_runs[0]
    run_dir = shutil.copytree(best.run_dir, tmp_path / "run")
    (run_dir / "plots" / "eval").mkdir(parents=True)
    (run_dir / "plots" / "eval" / "roc.png").write_bytes(PNG)
    cfg = with_registry(best.cfg, tmp_path)

    run_id = log_run(cfg, run_dir, data_hash="sha256:abc")

    mlflow = _client(cfg)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == best.cfg.name
    assert run.data.params["model.variant"] == "em3" and run.data.params["model.mlp_hidden"] == "[32]"
    assert run.data.params["train.batch_size"] == "2048" and run.data.params["registry.model_name"] == "em3"
    assert int(run.data.params["parameters.total"]) > 0
    assert run.data.metrics["test_auc"] == best.test["auc"] and run.data.metrics["test_cold_rows"] > 0
    train_json = json.loads((run_dir / "metrics" / "train.json").read_text())
    valid = mlflow.get_metric_history(run_id, "valid_auc")
    assert [(m.step, m.value) for m in valid] == [(row["epoch"], row["auc"]) for row in train_json["valid_history"]]
    assert len(valid) == 1
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert run.data.tags["git_commit"] == head and run.data.tags["data_hash"] == "sha256:abc"

    downloaded = Path(mlflow.download_artifacts(run_id, "", str(tmp_path / "download")))
    files = sorted(path.relative_to(downloaded).as_posix() for path in downloaded.rglob("*") if path.is_file())
    assert files == [
        "config.yaml",
        "model/config.yaml",
        "model/ids.json",  # what each table row stands for: a warm start maps by it
        "model/model.safetensors",
        "model/shapes.json",
        "plots/eval/roc.png",
    ]
    assert (downloaded / "model" / "model.safetensors").read_bytes() == (
        run_dir / "model/model.safetensors"
    ).read_bytes()
    assert "min_auc: 0.0" in (downloaded / "config.yaml").read_text()


def test_gate_promote_rollback_and_load(trained_runs, small_data, tmp_path):
    better, worse = trained_runs
    cfg = with_registry(better.cfg, tmp_path)
    mlflow = _client(cfg)

    first = register(cfg, log_run(cfg, better.run_dir, data_hash="d1"))
    assert (first["version"], first["alias"]) == (1, "champion")
    v1 = mlflow.get_model_version("em3", "1")
    assert v1.tags["gate_decision"] == "champion" and v1.tags["data_hash"] == "d1"
    assert float(v1.tags["test_auc"]) == better.test["auc"] and "previous_champion" not in v1.tags
    _audited(v1.tags, "champion", "gate: auc")

    second = register(cfg, log_run(cfg, worse.run_dir, data_hash="d2"))
    assert (second["version"], second["alias"]) == (2, "challenger")
    v2 = mlflow.get_model_version("em3", "2")
    assert v2.tags["gate_decision"] == "challenger"
    assert v2.tags["gate_reason"] == second["reason"]
    assert f"auc {worse.test['auc']:.4f} < champion's {better.test['auc']:.4f} +0 (min_delta)" in second["reason"]
    assert mlflow.get_registered_model("em3").aliases == {"champion": 1, "challenger": 2}

    promote(cfg, 2, "A/B test won")
    assert mlflow.get_registered_model("em3").aliases == {"champion": 2}
    v2 = mlflow.get_model_version("em3", "2")
    assert v2.tags["previous_champion"] == "1"
    _audited(v2.tags, "champion", "promote: A/B test won")
    assert_same_predictions(load("models:/em3@champion", cfg.registry), worse, small_data)

    rolled = rollback(cfg, "conversion dropped")
    assert (rolled["version"], rolled["rolled_back"]) == (1, 2)
    assert mlflow.get_registered_model("em3").aliases == {"champion": 1}
    _audited(mlflow.get_model_version("em3", "1").tags, "champion", "rollback from version 2: conversion dropped")
    _audited(mlflow.get_model_version("em3", "2").tags, "rolled_back", "conversion dropped")
    assert_same_predictions(load("models:/em3@champion", cfg.registry), better, small_data)
    assert_same_predictions(load("models:/em3/2", cfg.registry), worse, small_data)

    audit = [
        json.loads(value)
        for key, value in sorted(mlflow.get_registered_model("em3").tags.items())
        if key.startswith("audit.")
    ]
    assert [(entry["event"], entry["version"]) for entry in audit] == [
        ("champion", 1),
        ("challenger", 2),
        ("champion", 2),
        ("champion", 1),
        ("rolled_back", 2),
    ]

    listed = history(cfg)
    assert [(row["version"], row["aliases"]) for row in listed] == [(1, ["champion"]), (2, [])]
    assert listed[1]["tags"]["gate_reason"] == second["reason"]

    with pytest.raises(RegistryError, match=r"version 1 of model 'em3' replaced no earlier champion"):
        rollback(cfg, "again")


def test_errors_name_the_model_and_version(trained_runs, tmp_path):
    cfg = with_registry(trained_runs[0].cfg, tmp_path)
    with pytest.raises(RegistryError, match=r"model 'em3' is not registered"):
        promote(cfg, 1, "no model yet")
    register(cfg, log_run(cfg, trained_runs[1].run_dir))
    with pytest.raises(RegistryError, match=r"model 'em3' has no version 7"):
        promote(cfg, 7, "typo")
    with pytest.raises(RegistryError, match=r"version 1 of model 'em3' is already the champion"):
        promote(cfg, 1, "twice")
    with pytest.raises(RegistryError, match=r"needs a reason"):
        promote(cfg, 1, " ")
    with pytest.raises(RegistryError, match=r"model 'em3' has no alias 'challenger'"):
        load("models:/em3@challenger", cfg.registry)
    with pytest.raises(RegistryError, match=r"models:/NAME@ALIAS or models:/NAME/VERSION"):
        load("runs:/abc/model", cfg.registry)


def test_a_refused_model_stays_challenger_and_nothing_rolls_back(trained_runs, tmp_path):
    cfg = with_registry(trained_runs[0].cfg, tmp_path, min_auc=0.99)
    decided = register(cfg, log_run(cfg, trained_runs[0].run_dir))
    assert decided["alias"] == "challenger" and "< min_auc 0.99" in decided["reason"]
    with pytest.raises(RegistryError, match=r"model 'em3' has no champion: nothing to roll back"):
        rollback(cfg, "no champion")
