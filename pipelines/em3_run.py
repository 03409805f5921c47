"""The em3 pipeline from Python: its parameters from a config, compiling it, a whole run on this machine
(kfp.local) with its summary, and a run submitted to a Kubeflow Pipelines endpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from em3.comparison import fmt_metric, markdown_table
from em3.config import Config, ConfigError
from em3.workflow import VARIANTS
from pipelines import run
from pipelines.em3_pipeline import PIPELINE_YAML, em3_pipeline, synthetic_data

PARAMETERS = {
    "data_uri": "ingest.source",
    "backbone": "model.backbone",
    "min_auc": "registry.min_auc",
    "min_delta": "registry.min_delta",
    "cold_tolerance": "registry.cold_tolerance",
}
SUMMARY_METRICS = ("auc", "gauc", "logloss", "cold_auc", "material_similarity", "behaviour_similarity")


def pipeline_arguments(cfg: Config, variants: Sequence[str] = VARIANTS) -> dict[str, Any]:
    """The pipeline's parameters for ``cfg``: the keys of PARAMETERS become parameters and leave the ``config``
    text (so a new gate threshold does not invalidate the cached data and training tasks)."""
    values = cfg.model_dump(mode="json")
    arguments: dict[str, Any] = {}
    for parameter, dotted in PARAMETERS.items():
        section, key = dotted.split(".")
        arguments[parameter] = values[section].pop(key)
    return {**arguments, "config": yaml.safe_dump(values, sort_keys=False), "variants": list(variants)}


def compile_em3(path: str | Path = PIPELINE_YAML) -> Path:
    """Compile the pipeline to a YAML package for the Kubeflow UI (images from EM3_IMAGE / EM3_GPU_IMAGE)."""
    return run.compile_pipeline(em3_pipeline, path)


def run_local(
    cfg: Config,
    pipeline_root: str | Path,
    variants: Sequence[str] = VARIANTS,
    synthetic: bool = False,
    cache: bool = True,
    runner: str = "subprocess",
) -> dict:
    """Run the whole pipeline on this machine with ``kfp.local`` (see pipelines.run.local_runs; with the docker
    runner the MLflow store of the embedded defaults goes under ``pipeline_root``, the one folder the containers
    see).

    With ``synthetic`` the raw data is first written by the ``synthetic_data`` pipeline (``cfg.raw_synthetic``)
    and ingested from there; otherwise from ``cfg.ingest.source``. ``cache`` reuses a task's earlier outputs when its
    component and inputs are unchanged (ingest, features, training...; never register). Returns the summary:
    ``models`` (evaluate.json's metrics per model), ``registered`` (model, version, alias, reason, candidate),
    ``tracking_uri``, ``pipeline_root``. Raises PipelineError when a task fails.
    """
    pipeline_root = Path(pipeline_root).resolve()
    if runner == "docker":
        from em3.containers import container_config

        cfg = container_config(cfg, pipeline_root, synthetic)
    arguments = pipeline_arguments(cfg, variants)
    with run.local_runs(pipeline_root, cache, runner) as run_here:
        if synthetic:
            arguments["data_uri"] = run_here(synthetic_data, config=arguments["config"]).output.path
        outputs = run_here(em3_pipeline, **arguments).outputs
    evaluation = json.loads((Path(outputs["evaluation"].path) / "evaluate.json").read_text())
    registered = {key: outputs[key] for key in ("model", "version", "alias", "reason", "candidate")}
    return {
        "models": evaluation["models"],
        "registered": {**registered, "version": int(registered["version"])},
        "tracking_uri": cfg.registry.tracking_uri,
        "pipeline_root": str(pipeline_root),
    }


def submit(
    host: str,
    cfg: Config,
    variants: Sequence[str] = VARIANTS,
    experiment: str = "em3",
    run_name: str | None = None,
    namespace: str | None = None,
    enable_caching: bool | None = None,
) -> str:
    """Create a run of the pipeline on the Kubeflow Pipelines endpoint ``host`` with ``cfg``'s parameters; returns
    the run id."""
    if cfg.registry.tracking_uri.startswith("sqlite:"):
        raise ConfigError(
            f"registry.tracking_uri is {cfg.registry.tracking_uri!r}: a run on a cluster cannot register into a "
            "local SQLite store; set it to your MLflow server (e.g. --set registry.tracking_uri=http://mlflow:5000)"
        )
    arguments = pipeline_arguments(cfg, variants)
    return run.submit(host, em3_pipeline, arguments, experiment, run_name, namespace, enable_caching)


def summary_table(summary: dict) -> str:
    """The summary of a local run: test metrics per model (markdown), the gate's decision and the MLflow UI
    command."""
    from em3.registry.tracking import redact

    rows = [
        {"model": name, **{key: fmt_metric(values.get(key)) for key in SUMMARY_METRICS}}
        for name, values in summary["models"].items()
    ]
    registered = summary["registered"]
    return "\n".join(
        [
            markdown_table(rows, ("model", *SUMMARY_METRICS)),
            "",
            f"Registered: {registered['candidate']} (best validation AUC) as {registered['model']} version "
            f"{registered['version']} → {registered['alias']}",
            f"Gate: {registered['reason']}",
            f"Artifacts of every task: {summary['pipeline_root']}",
            f"MLflow UI: mlflow ui --backend-store-uri {redact(summary['tracking_uri'])}",  # no password from the URL
        ]
    )
