"""The em3 pipeline (Kubeflow Pipelines v2): ingest → validate → features → train (one GPU task per variant) →
evaluate → register behind the gate. Compile it with ``em3 pipeline compile`` (or ``python -m
pipelines.em3_pipeline`` from the repository root); run it here with ``em3 pipeline run --local`` (kfp.local
ignores the Kubernetes settings below). ``pipelines/em3_run.py`` compiles, runs and submits it from Python.

Every parameter and output is described in the docstrings below: KFP puts those descriptions into the compiled YAML,
where the Kubeflow UI shows them next to each field.

Cluster settings: train tasks ask for ``EM3_TRAIN_GPUS`` (read when compiling; default 1) ``nvidia.com/gpu`` on a
node labelled ``nvidia.com/gpu.present=true`` and tolerate the ``nvidia.com/gpu`` taint (with several GPUs a task
trains with one ``torchrun`` process per GPU); with ``EM3_DATASET_PVC`` (read when compiling) ingest, validate and
features mount that PersistentVolumeClaim at /mnt/em3-dataset, where daily runs keep their dataset (dataset_uri a
folder under it); ingest, validate, features, train (which compare the tables with
their source) and register read S3 credentials from the secret ``em3-s3``; register reads MLflow credentials from
``em3-mlflow`` (optional: servers without auth need none).
"""

import os
from pathlib import Path
from typing import NamedTuple

from kfp import dsl, kubernetes

from components import evaluate, features, generate, ingest, register, train, validate
from em3.cluster import (
    CPU_PER_GPU,
    GPU_NODE_LABEL,
    GPU_RESOURCE,
    MEMORY_GIB_PER_GPU,
    MLFLOW_ENV,
    MLFLOW_SECRET,
    S3_ENV,
    S3_SECRET,
)

PIPELINE_YAML = Path(__file__).with_suffix(".yaml")
TRAIN_GPUS = int(os.environ.get("EM3_TRAIN_GPUS", "1"))
# Daily runs keep their dataset in a volume that ingest, validate and features share (read when compiling): the
# PersistentVolumeClaim EM3_DATASET_PVC mounted at DATASET_MOUNT, so dataset_uri is a folder under it
DATASET_PVC, DATASET_MOUNT = os.environ.get("EM3_DATASET_PVC", ""), "/mnt/em3-dataset"
# The config parameter's default (YAML, keys in em3/config.py; one line: KFP's header comment breaks on newlines).
# Data folders, data source, backbone, variant and the gate's thresholds come from the pipeline's parameters.
CLUSTER_CONFIG = (
    "{train: {progress: false}, features: {progress: false}, registry: "
    "{tracking_uri: 'http://mlflow.mlflow.svc.cluster.local:5000', experiment: em3, model_name: em3}}"
)


class Outputs(NamedTuple):
    evaluation: dsl.Dataset
    model: str
    version: int
    alias: str
    reason: str
    candidate: str


def secret_env(task: dsl.PipelineTask, secret: str, keys: tuple[str, ...], optional: bool = False) -> None:
    """Give ``task`` the ``keys`` of the Kubernetes secret ``secret`` as environment variables of the same names."""
    kubernetes.use_secret_as_env(
        task, secret_name=secret, secret_key_to_env={key: key for key in keys}, optional=optional
    )


@dsl.pipeline(name="em3", description="EM3 multimodal ranking: data → features → train on GPUs → evaluate → gate")
def em3_pipeline(
    data_uri: str,
    config: str = CLUSTER_CONFIG,
    backbone: str = "din",
    variants: list[str] = ["id_only", "two_stage", "em3"],  # noqa: B006 (a pipeline parameter's default)
    min_auc: float = 0.55,
    min_delta: float = 0.0,
    cold_tolerance: float = 0.005,
    run_date: str = "",
    dataset_uri: str = "",
) -> Outputs:
    """Args:
        data_uri: Where the raw logs are: a folder the pods can read, or s3://bucket/prefix (credentials from the
            Kubernetes secret em3-s3). Its layout is the config's ingest.format: hm (Kaggle H&M files
            transactions_train.csv, articles.csv, customers.csv, images/) or native (an impression log with
            user_id, item_id, ts, label).
        config: The em3 config as YAML or one-line JSON-style YAML; every key is listed in em3/config.py and
            unknown keys fail the run. Set the MLflow server here (registry.tracking_uri, registry.model_name) and
            anything else the stages read; leave out data_uri, backbone, variants and the gate's thresholds: those
            parameters take precedence over the config.
        backbone: The ranking backbone every variant trains on: din (target attention over the user's history)
            or dcn (DCN-v2 cross network).
        variants: The models to train, one GPU task each, as a JSON list; any of id_only (ID embeddings only),
            two_stage (frozen content embeddings, the baseline) and em3 (content trained with the ranking loss).
            The one with the best validation AUC is registered.
        min_auc: Gate: the registered model becomes champion only with a test AUC of at least this (0 to 1);
            below it, it is registered as challenger.
        min_delta: Gate: with a champion already registered, the new model must beat the champion's test AUC by
            at least this to replace it (0: no worse; negative: tolerate a small drop).
        cold_tolerance: Gate: largest accepted drop of the test AUC on cold-start items (cold_auc) below the
            champion's (0 or more).
        run_date: A daily run: its date (YYYY-MM-DD), or scheduled in a recurring run (em3 pipeline schedule:
            the schedule time). The day before it is added to the dataset at dataset_uri as its own partition,
            checked for drift against the days before, and published there when it passes; the token store there
            is reused. Empty: the whole source is ingested (and with a dataset_uri, the dataset starts from it).
        dataset_uri: The folder the pods share that keeps the dataset (tables/, features/) between daily runs.
            Windows, warm start and the gate on the newest day are config settings (data.split: newest_days,
            train.init_from: models:/em3@champion, registry.rescore_champion).

    Returns:
        evaluation: The evaluate stage's folder: evaluate.json (DESIGN section 2 metrics of every model), the
            plots and report.html.
        model: The registered model's name in MLflow (load it as models:/NAME@ALIAS).
        version: The registered model version.
        alias: What the gate made it: champion or challenger.
        reason: Why the gate decided so (also a tag of the version).
        candidate: Which trained run was registered (variant_backbone, the best validation AUC).
    """
    ingested = ingest(
        config=config,
        data_uri=data_uri,
        run_date=run_date,
        dataset_uri=dataset_uri,
        scheduled_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
    ).set_caching_options(True)
    secret_env(ingested, S3_SECRET, S3_ENV)
    tables = ingested.outputs["tables"]
    checked = validate(config=config, tables=tables, dataset_uri=dataset_uri)
    encoded = features(config=config, tables=tables, dataset_uri=dataset_uri).after(checked)
    encoded.set_caching_options(True)
    store = encoded.outputs["store"]
    for stage in (checked, encoded):  # they compare the tables with their source (em3.validation.freshness)
        secret_env(stage, S3_SECRET, S3_ENV)
    if DATASET_PVC:  # the daily dataset (em3.daily) in a volume the three share
        for stage in (ingested, checked, encoded):
            kubernetes.mount_pvc(stage, pvc_name=DATASET_PVC, mount_path=DATASET_MOUNT)

    with dsl.ParallelFor(variants) as variant:
        trained = train(
            config=config,
            variant=variant,
            backbone=backbone,
            data_uri=data_uri,
            tables=tables,
            validation=checked.outputs["validation"],
            store=store,
        )
        trained.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(TRAIN_GPUS)
        trained.set_cpu_request(str(CPU_PER_GPU * TRAIN_GPUS))
        trained.set_memory_request(f"{MEMORY_GIB_PER_GPU * TRAIN_GPUS}Gi")
        kubernetes.add_node_selector(trained, *GPU_NODE_LABEL)
        kubernetes.add_toleration(trained, key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")
        secret_env(trained, S3_SECRET, S3_ENV)

    evaluated = evaluate(config=config, tables=tables, store=store, models=dsl.Collected(trained.outputs["model"]))
    registered = register(
        config=config,
        data_hash=ingested.outputs["Output"],
        min_auc=min_auc,
        min_delta=min_delta,
        cold_tolerance=cold_tolerance,
        tables=tables,
        validation=checked.outputs["validation"],
        store=store,
        models=dsl.Collected(trained.outputs["model"]),
        evaluation=evaluated.outputs["evaluation"],
    ).set_caching_options(False)
    secret_env(registered, S3_SECRET, S3_ENV)
    secret_env(registered, MLFLOW_SECRET, MLFLOW_ENV, optional=True)
    return Outputs(evaluated.outputs["evaluation"], *(registered.outputs[name] for name in Outputs._fields[1:]))


@dsl.pipeline(name="em3-synthetic-data", description="raw-layout synthetic data (raw_synthetic) for em3_pipeline")
def synthetic_data(config: str) -> dsl.Dataset:
    """The demo's raw data, as a pipeline so that kfp.local caches it like the tasks it feeds.

    Args:
        config: The em3 config as YAML; its raw_synthetic section sets the sizes.

    Returns:
        The raw-layout (H&M-like) data folder, em3_pipeline's data_uri.
    """
    return generate(config=config).outputs["raw"]


if __name__ == "__main__":
    from pipelines.run import compile_pipeline

    compile_pipeline(em3_pipeline, PIPELINE_YAML)
