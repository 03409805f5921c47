"""Model components: train one variant (on a GPU node in the cluster), evaluate them all, register the best.

Component bodies run in the image (or a kfp.local subprocess): imports go inside them, logic lives in ``em3``.
``config`` is the pipeline's config parameter (YAML text, see em3/config.py).
"""

from typing import NamedTuple

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output, component

from em3.cluster import EM3_GPU_IMAGE, EM3_IMAGE


@component(base_image=EM3_GPU_IMAGE, install_kfp_package=False)
def train(
    config: str,
    variant: str,
    backbone: str,
    data_uri: str,
    tables: Input[Dataset],
    validation: Input[Dataset],
    store: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train ``variant`` on ``backbone`` (CUDA with bf16 when the pod has a GPU; with several GPUs, one ``torchrun``
    process per GPU).

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); model and train set the architecture
            and the optimisation.
        variant: The model to train: id_only, two_stage or em3.
        backbone: The ranking backbone: din or dcn.
        data_uri: Where ingest read the raw logs; training refuses tables ingested from elsewhere.
        tables: The canonical tables from ingest.
        validation: The validate stage's folder; training refuses tables that did not pass it.
        store: The token store from features.

    Returns:
        model: The run folder: model/ (safetensors weights, config, shapes), metrics/train.json, checkpoints/;
            metadata: variant, backbone, framework.
        metrics: Test and validation metrics (test_auc, valid_auc, ...), steps and train_seconds.
    """
    from em3.config import config_from_yaml
    from em3.train.launch import train_here
    from em3.workflow import fetched_init, log_metrics

    run = {"name": f"{variant}_{backbone}", "output_dir": model.path, "model.variant": variant,
           "model.backbone": backbone, "ingest.source": data_uri, "data.source": "tables",
           "data.tables_dir": tables.path, "data.validation_dir": validation.path,
           "data.store_dir": store.path}  # fmt: skip
    cfg = config_from_yaml(config, "config parameter", run)
    with fetched_init(cfg) as cfg:  # train.init_from: models:/NAME@ALIAS downloaded for the run
        result = train_here(cfg)
    model.metadata.update({"variant": variant, "backbone": backbone, "framework": "pytorch"})
    log_metrics(metrics, result["test"], prefix="test_")
    log_metrics(metrics, result["valid"], prefix="valid_")
    log_metrics(metrics, {key: result[key] for key in ("steps", "train_seconds")})


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def evaluate(
    config: str,
    tables: Input[Dataset],
    store: Input[Dataset],
    models: Input[list[Model]],
    evaluation: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Every trained model on the same test split: DESIGN §2 metrics (``<model>.<metric>`` in the UI), plots,
    ``evaluate.json`` and the HTML report.

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); evaluate sets the metrics' settings.
        tables: The canonical tables from ingest.
        store: The token store from features.
        models: The trained run folders, one per variant.

    Returns:
        evaluation: evaluate.json (metrics per model), plots/ and report.html.
        report: The HTML report with the metrics and plots, shown in the UI.
        metrics: Every model's test metrics as <model>.<metric>.
    """
    import shutil
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.data.loading import tables_data
    from em3.evaluation import run_evaluate
    from em3.workflow import log_metrics

    cfg = config_from_yaml(config, "config parameter", {"data.tables_dir": tables.path, "data.store_dir": store.path})
    data = tables_data(cfg.data)  # read as the train step read them (history rule, user features, split)
    summary = run_evaluate([Path(m.path) for m in models], data, cfg.evaluate, Path(evaluation.path))
    shutil.copyfile(Path(evaluation.path) / "report.html", report.path)
    for name, values in summary["models"].items():
        log_metrics(metrics, values, prefix=f"{name}.")


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def register(
    config: str,
    data_hash: str,
    min_auc: float,
    min_delta: float,
    cold_tolerance: float,
    tables: Input[Dataset],
    validation: Input[Dataset],
    store: Input[Dataset],
    models: Input[list[Model]],
    evaluation: Input[Dataset],
) -> NamedTuple("Registered", [("model", str), ("version", int), ("alias", str), ("reason", str), ("candidate", str)]):
    """Log the model with the best validation AUC to MLflow (with the evaluation plots) and register it: the gate
    makes it ``champion`` or ``challenger`` and tags the reason. MLflow settings: ``registry`` in the config.

    Args:
        config: The em3 config as YAML (the pipeline's config parameter); registry names the MLflow server.
        data_hash: The data hash from ingest, recorded on the model version.
        min_auc: Gate: champion only with a test AUC of at least this.
        min_delta: Gate: champion only with a test AUC of at least the champion's plus this.
        cold_tolerance: Gate: largest accepted drop of cold_auc below the champion's.
        tables: The canonical tables from ingest (the serving catalogue's ids and histories come from them).
        validation: The validate stage's folder (the tables' guard reads it).
        store: The token store from features (the serving catalogue's content embeddings come from it).
        models: The trained run folders; the one with the best validation AUC is registered.
        evaluation: The evaluate stage's folder (its plots go with the MLflow run).

    Returns:
        model: The registered model's name in MLflow.
        version: The new model version.
        alias: champion or challenger.
        reason: The gate's reason.
        candidate: The registered run (variant_backbone).
    """
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.workflow import register_best

    gate = {"registry.min_auc": min_auc, "registry.min_delta": min_delta, "registry.cold_tolerance": cold_tolerance}
    cfg = config_from_yaml(config, "config parameter", gate)
    data_dirs = {"tables_dir": tables.path, "validation_dir": validation.path, "store_dir": store.path}
    result = register_best(cfg, [m.path for m in models], Path(evaluation.path) / "plots", data_hash, data_dirs)
    return tuple(result[key] for key in ("model", "version", "alias", "reason", "candidate"))
