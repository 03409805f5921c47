"""The Kubeflow pipeline from Python: compile it, run it on this machine through ``kfp.local``, submit it to a
Kubeflow Pipelines endpoint, and summarise a run; plus what its components share (the pipeline's parameters, the
data hash, metrics for the UI, registering the best trained run). Components read the ``config`` parameter with
``em3.config.config_from_yaml``.

The pipeline itself is ``pipelines/em3_pipeline.py`` and its components are in ``components/``: they sit next to
this package in a checkout, not in the installed wheel (the container images only need ``em3``).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from em3.config import Config, ConfigError, load_config
from em3.report import fmt_metric, markdown_table

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINE_YAML = REPO_ROOT / "pipelines" / "em3_pipeline.yaml"
VARIANTS = ("id_only", "two_stage", "em3")
RUNNERS = ("subprocess", "docker")  # kfp.local: each task a subprocess of this environment, or a container
PARAMETERS = {"data_uri": "ingest.source", "backbone": "model.backbone", "min_auc": "registry.min_auc",
              "min_delta": "registry.min_delta", "cold_tolerance": "registry.cold_tolerance"}  # fmt: skip
SUMMARY_METRICS = ("auc", "gauc", "logloss", "cold_auc", "material_similarity", "behaviour_similarity")


class PipelineError(RuntimeError):
    """A local run failed: a task failed (its error is in its log), or there is nothing to run its containers."""


def pipeline_arguments(cfg: Config, variants: Sequence[str] = VARIANTS) -> dict[str, Any]:
    """The pipeline's parameters for ``cfg``: the keys of PARAMETERS become parameters and leave the ``config``
    text (so a new gate threshold does not invalidate the cached data and training tasks)."""
    values = cfg.model_dump(mode="json")
    arguments: dict[str, Any] = {}
    for parameter, dotted in PARAMETERS.items():
        section, key = dotted.split(".")
        arguments[parameter] = values[section].pop(key)
    return {**arguments, "config": yaml.safe_dump(values, sort_keys=False), "variants": list(variants)}


def data_hash(tables_dir: str | Path) -> str:
    """sha256 of what ingest read and how (raw file hashes, image hashes, parameters), from its manifest."""
    from em3.validation.contract import read_manifest

    manifest = read_manifest(Path(tables_dir))
    identity = {key: manifest[key] for key in ("files", "images", "params")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def log_metrics(sink: Any, values: Mapping[str, Any], prefix: str = "") -> None:
    """Finite numbers of ``values`` to a KFP ``Metrics`` artifact (``sink.log_metric``; null and NaN are left out),
    all its metrics also as JSON in its file: kfp.local's cache takes an output without a file for a lost one."""
    for key, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            sink.log_metric(f"{prefix}{key}", float(value))
    path = Path(sink.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sink.metadata, indent=2, sort_keys=True) + "\n")


def best_run(run_dirs: Sequence[str | Path]) -> Path:
    """The training run with the highest validation AUC (``metrics/train.json``): test metrics stay for the gate."""
    if not run_dirs:
        raise ValueError("no trained runs to choose from")

    def valid_auc(run_dir: Path) -> float:
        auc = json.loads((run_dir / "metrics" / "train.json").read_text())["valid"].get("auc")
        return auc if isinstance(auc, int | float) and math.isfinite(auc) else -math.inf

    return max((Path(run_dir) for run_dir in run_dirs), key=valid_auc)


def register_best(cfg: Config, run_dirs: Sequence[str | Path], plots_dir: Path | None, data_sha: str) -> dict:
    """Log the best of ``run_dirs`` to MLflow (its own config, the registry settings of ``cfg``, the evaluation
    plots) and register it behind the gate; returns em3.registry.register's result plus ``candidate`` (its name)."""
    from em3.models.io import CONFIG
    from em3.registry import log_run, register

    run_dir = best_run(run_dirs)
    run_cfg = load_config(run_dir / "model" / CONFIG).model_copy(update={"registry": cfg.registry})
    with tempfile.TemporaryDirectory(prefix="em3-register-") as tmp:
        staged = Path(tmp)
        for part in ("model", "metrics"):
            shutil.copytree(run_dir / part, staged / part)
        if plots_dir is not None and plots_dir.is_dir():
            shutil.copytree(plots_dir, staged / "plots")
        result = register(run_cfg, log_run(run_cfg, staged, data_hash=data_sha))
    return {**result, "candidate": run_cfg.name}


def pipeline_function(name: str = "em3_pipeline") -> Callable:
    """A ``@dsl.pipeline`` function of ``pipelines/em3_pipeline.py`` (the checkout's root goes on sys.path when
    em3 runs from a console script)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from pipelines import em3_pipeline

    return getattr(em3_pipeline, name)


def compile_pipeline(path: str | Path = PIPELINE_YAML) -> Path:
    """Compile the pipeline to a YAML package for the Kubeflow UI (images from EM3_IMAGE / EM3_GPU_IMAGE)."""
    from kfp import compiler

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_function(), str(path))
    return path


def run_local(cfg: Config, pipeline_root: str | Path, variants: Sequence[str] = VARIANTS, synthetic: bool = False,
              cache: bool = True, runner: str = "subprocess") -> dict:  # fmt: skip
    """Run the whole pipeline on this machine with ``kfp.local``: each task a subprocess of this environment
    (``runner="subprocess"``) or a container of the CPU image (``"docker"``, see em3.containers: the MLflow store of
    the embedded defaults then goes under ``pipeline_root``, the one folder the containers see).

    With ``synthetic`` the raw data is first written by the ``synthetic_data`` pipeline (``cfg.raw_synthetic``)
    and ingested from there; otherwise from ``cfg.ingest.source``. ``cache`` reuses a task's earlier outputs when its
    component and inputs are unchanged (ingest, features, training...; never register). Returns the summary:
    ``models`` (evaluate.json's metrics per model), ``registered`` (model, version, alias, reason, candidate),
    ``tracking_uri``, ``pipeline_root``. Raises PipelineError when a task fails.
    """
    import builtins
    import contextlib

    import kfp.local

    pipeline_root = Path(pipeline_root).resolve()
    pipeline, synthetic_data = pipeline_function(), pipeline_function("synthetic_data")
    local_runner, in_runner = kfp.local.SubprocessRunner(use_venv=False), contextlib.nullcontext()
    if runner == "docker":
        from em3 import containers

        cfg = containers.container_config(cfg, pipeline_root, synthetic)
        pipeline, synthetic_data = containers.on_cpu_image(pipeline), containers.on_cpu_image(synthetic_data)
        try:
            local_runner = containers.docker_runner(pipeline_root)
        except containers.ContainerError as exc:
            raise PipelineError(str(exc)) from None
        in_runner = containers.exit_status_kept()
    elif runner != "subprocess":
        raise ValueError(f"runner {runner!r}: expected one of {RUNNERS}")
    kfp.local.init(runner=local_runner, pipeline_root=str(pipeline_root), enable_caching=cache)
    arguments = pipeline_arguments(cfg, variants)
    print_function = builtins.print  # kfp.local indents print() per task, not thread-safely: parallel tasks leak it
    try:
        with in_runner:
            if synthetic:
                arguments["data_uri"] = synthetic_data(config=arguments["config"]).output.path
            outputs = pipeline(**arguments).outputs
    except RuntimeError as exc:  # kfp.local: "... finished with status FAILURE. Inner task failed: ..."
        raise PipelineError(f"{exc} (the task's error is at the end of its log above)") from exc
    finally:
        builtins.print = print_function
    evaluation = json.loads((Path(outputs["evaluation"].path) / "evaluate.json").read_text())
    registered = {key: outputs[key] for key in ("model", "version", "alias", "reason", "candidate")}
    return {"models": evaluation["models"], "registered": {**registered, "version": int(registered["version"])},
            "tracking_uri": cfg.registry.tracking_uri, "pipeline_root": str(pipeline_root)}  # fmt: skip


def submit(
    host: str,
    cfg: Config,
    variants: Sequence[str] = VARIANTS,
    experiment: str = "em3",
    run_name: str | None = None,
    namespace: str | None = None,
    enable_caching: bool | None = None,
) -> str:
    """Compile the pipeline and create a run of it on the Kubeflow Pipelines endpoint ``host`` with ``cfg``'s
    parameters; returns the run id. Authentication is kfp.Client's (e.g. a service-account token in the cluster)."""
    import kfp

    if cfg.registry.tracking_uri.startswith("sqlite:"):
        raise ConfigError(
            f"registry.tracking_uri is {cfg.registry.tracking_uri!r}: a run on a cluster cannot register into a "
            "local SQLite store; set it to your MLflow server (e.g. --set registry.tracking_uri=http://mlflow:5000)"
        )
    client = kfp.Client(host=host, **({"namespace": namespace} if namespace else {}))
    with tempfile.TemporaryDirectory(prefix="em3-pipeline-") as tmp:
        package = compile_pipeline(Path(tmp) / "em3_pipeline.yaml")
        result = client.create_run_from_pipeline_package(
            str(package), arguments=pipeline_arguments(cfg, variants), run_name=run_name,
            experiment_name=experiment, namespace=namespace, enable_caching=enable_caching,
        )  # fmt: skip
    return result.run_id


def summary_table(summary: dict) -> str:
    """The demo's summary: test metrics per model (markdown), the gate's decision and the MLflow UI command."""
    from em3.registry.tracking import redact

    rows = [{"model": name, **{key: fmt_metric(values.get(key)) for key in SUMMARY_METRICS}}
            for name, values in summary["models"].items()]  # fmt: skip
    registered = summary["registered"]
    return "\n".join([
        markdown_table(rows, ("model", *SUMMARY_METRICS)),
        "",
        f"Registered: {registered['candidate']} (best validation AUC) as {registered['model']} version "
        f"{registered['version']} → {registered['alias']}",
        f"Gate: {registered['reason']}",
        f"Artifacts of every task: {summary['pipeline_root']}",
        f"MLflow UI: mlflow ui --backend-store-uri {redact(summary['tracking_uri'])}",  # no password from the URL
    ])  # fmt: skip
