"""Each component called through ``.python_func`` with real artifact folders, as the KFP executor calls it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from kfp import dsl

from components import evaluate, features, generate, ingest, register, train, validate
from em3.data.token_store import TokenStore
from em3.errors import DataError
from em3.registry import history
from em3.validation.contract import data_hash, read_interactions
from pipelines.em3_run import pipeline_arguments
from tests.pipelines.conftest import tiny_config


def artifact(kind: type[dsl.Artifact], root: Path, name: str) -> dsl.Artifact:
    return kind(name=name, uri=str(root / name))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SimpleNamespace:
    """generate → ingest → validate → features on the tiny config, each into its own artifact folder."""
    root = tmp_path_factory.mktemp("components")
    cfg = tiny_config(root)
    config = pipeline_arguments(cfg)["config"]
    out = SimpleNamespace(
        root=root,
        cfg=cfg,
        config=config,
        raw=artifact(dsl.Dataset, root, "raw"),
        tables=artifact(dsl.Dataset, root, "tables"),
        rows=artifact(dsl.Metrics, root, "rows"),
        validation=artifact(dsl.Dataset, root, "validation"),
        report=artifact(dsl.Markdown, root, "report.md"),
        report_html=artifact(dsl.HTML, root, "report.html"),
        drift=artifact(dsl.Metrics, root, "drift"),
        store=artifact(dsl.Dataset, root, "store"),
    )
    generate.python_func(config=config, raw=out.raw)
    out.digest = ingest.python_func(config=config, data_uri=out.raw.path, tables=out.tables, metrics=out.rows)
    validate.python_func(
        config=config,
        tables=out.tables,
        validation=out.validation,
        report=out.report,
        report_html=out.report_html,
        metrics=out.drift,
    )
    features.python_func(config=config, tables=out.tables, store=out.store)
    return out


def test_data_components_write_their_artifacts(data):
    n_items = data.cfg.raw_synthetic.n_items
    assert data.raw.metadata["items"] == n_items and (Path(data.raw.path) / "articles.csv").is_file()

    manifest = json.loads((Path(data.tables.path) / "manifest.json").read_text())
    interactions = read_interactions(Path(data.tables.path)).to_pandas()
    assert manifest["source"] == data.raw.path, "ingest reads the data_uri parameter, not ingest.source"
    assert data.rows.metadata["rows.interactions"] == len(interactions) == manifest["rows"]["interactions"] > 0
    assert sum(data.rows.metadata[f"rows.{split}"] for split in ("train", "valid", "test")) == len(interactions)
    assert data.digest == data.tables.metadata["data_hash"] == data_hash(data.tables.path)
    assert len(data.digest) == 64

    assert Path(data.report.path).read_text().startswith("# Data validation: PASSED")
    validated = json.loads((Path(data.validation.path) / "report.json").read_text())
    assert validated["passed"] is True
    assert Path(data.report_html.path).read_text().startswith("<!DOCTYPE html>")
    drift = validated["drift"]  # the demo's days are small: reported, not judged, and the UI gets the counts
    assert data.drift.metadata["drift_failures"] == drift["failures"] == 0

    assert data.store.metadata["items"] == n_items
    assert TokenStore.load(data.store.path).n_rows == n_items + 1  # row 0: no item


def test_model_components_train_evaluate_and_register(data):
    model, train_metrics = artifact(dsl.Model, data.root, "model"), artifact(dsl.Metrics, data.root, "train_metrics")
    train.python_func(
        config=data.config,
        variant="em3",
        backbone="dcn",
        data_uri=data.raw.path,
        tables=data.tables,
        validation=data.validation,
        store=data.store,
        model=model,
        metrics=train_metrics,
    )
    result = json.loads((Path(model.path) / "metrics" / "train.json").read_text())
    assert (Path(model.path) / "model" / "model.safetensors").is_file()
    assert (result["name"], result["variant"], result["backbone"]) == ("em3_dcn", "em3", "dcn")
    assert train_metrics.metadata["test_auc"] == pytest.approx(result["test"]["auc"])
    assert train_metrics.metadata["valid_auc"] == pytest.approx(result["valid"]["auc"])
    assert model.metadata["variant"] == "em3"
    assert result["data"] == {
        "source": "tables",
        "tables_dir": data.tables.path,
        "store_dir": data.store.path,
        "ingested_from": data.raw.path,
        "data_hash": data.digest,
    }, "train.json names its data"

    evaluation, report = artifact(dsl.Dataset, data.root, "evaluation"), artifact(dsl.HTML, data.root, "report.html")
    metrics = artifact(dsl.Metrics, data.root, "evaluate_metrics")
    evaluate.python_func(
        config=data.config,
        tables=data.tables,
        store=data.store,
        models=[model],
        evaluation=evaluation,
        report=report,
        metrics=metrics,
    )
    summary = json.loads((Path(evaluation.path) / "evaluate.json").read_text())
    assert metrics.metadata["em3_dcn.auc"] == pytest.approx(summary["models"]["em3_dcn"]["auc"])
    assert metrics.metadata["em3_dcn.auc"] == pytest.approx(result["test"]["auc"]), "same model, same test split"
    assert Path(report.path).read_text().lstrip().lower().startswith("<!doctype html")

    outputs = register.python_func(
        config=data.config,
        data_hash=data.digest,
        min_auc=0.0,
        min_delta=0.0,
        cold_tolerance=0.005,
        tables=data.tables,
        validation=data.validation,
        store=data.store,
        models=[model],
        evaluation=evaluation,
    )
    assert outputs[:3] == ("em3", 1, "champion") and outputs[4] == "em3_dcn"
    (version,) = history(data.cfg)
    assert version["aliases"] == ["champion"] and version["tags"]["data_hash"] == data.digest
    assert version["tags"]["gate_reason"] == outputs[3]


def test_train_refuses_tables_ingested_from_another_data_uri(data, tmp_path):
    model, metrics = artifact(dsl.Model, tmp_path, "model"), artifact(dsl.Metrics, tmp_path, "metrics")
    with pytest.raises(DataError, match=r"the tables were ingested from .*, but ingest.source is .*elsewhere"):
        train.python_func(
            config=data.config,
            variant="id_only",
            backbone="din",
            data_uri=str(tmp_path / "elsewhere"),
            tables=data.tables,
            validation=data.validation,
            store=data.store,
            model=model,
            metrics=metrics,
        )
    assert not (Path(model.path) / "metrics" / "train.json").exists()
