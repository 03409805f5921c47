"""The scoring pipeline (Kubeflow Pipelines v2): candidates → features of the items the model never saw → score →
write. Upload the compiled ``em3_score_pipeline.yaml`` in the Kubeflow UI and run it on a schedule (a recurring
run) against ``models:/em3@champion``; run it here with ``em3 pipeline run --local --pipeline score`` (kfp.local
ignores the Kubernetes settings below). Compile it with ``em3 pipeline compile --pipeline score`` or ``python -m
pipelines.em3_score_pipeline`` from the repository root.

Cluster settings: the steps that read or write S3 take its credentials from the secret ``em3-s3``; those that read
the model, MLflow's from ``em3-mlflow`` (optional). The candidates and score steps are never cached: the alias they
read may have moved to another version since the last run.
"""

from pathlib import Path

from kfp import dsl

from components.score import candidates, new_item_features, score, write
from em3.cluster import MLFLOW_ENV, MLFLOW_SECRET, S3_ENV, S3_SECRET
from em3.config import Config
from pipelines.em3_pipeline import CLUSTER_CONFIG, secret_env

SCORE_YAML = Path(__file__).with_suffix(".yaml")


@dsl.pipeline(name="em3-score", description="Score an impression log with the champion: new items from content")
def em3_score_pipeline(
    log_uri: str,
    output_uri: str = "",
    items_uri: str = "",
    model_uri: str = "models:/em3@champion",
    config: str = CLUSTER_CONFIG,
) -> dsl.Dataset:
    """Score the impressions at log_uri with the model at model_uri.

    Args:
        log_uri: The impression log: user_id, item_id, ts[, sales_channel_id]; .csv or .parquet, a path or s3://.
        output_uri: Where the scores go (a .parquet path or s3://bucket/key.parquet; quarantine and manifest beside
            it); "" keeps them in the pipeline's artifacts only.
        items_uri: Items file for items the model never saw (item_id, text, image_path relative to its folder);
            "" for none (rows of new items are then refused with their reason).
        model_uri: The model: models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID.
        config: The em3 config as YAML (keys in em3/config.py): registry, features (the model's) and score.

    Returns:
        The scores, quarantine and manifest.
    """
    found = candidates(config=config, model_uri=model_uri, log_uri=log_uri).set_caching_options(False)
    encoded = new_item_features(config=config, items_uri=items_uri, candidates=found.outputs["log"])
    scored = score(
        config=config, model_uri=model_uri, candidates=found.outputs["log"], store=encoded.outputs["store"]
    ).set_caching_options(False)
    written = write(scores=scored.outputs["scores"], output_uri=output_uri).set_caching_options(False)
    for task in (found, encoded, written):
        secret_env(task, S3_SECRET, S3_ENV)
    for task in (found, scored):
        secret_env(task, MLFLOW_SECRET, MLFLOW_ENV, optional=True)
    return scored.outputs["scores"]


def compile_score(path: str | Path = SCORE_YAML) -> Path:
    """Compile the scoring pipeline to a YAML package for the Kubeflow UI (images from EM3_IMAGE)."""
    from pipelines import run

    return run.compile_pipeline(em3_score_pipeline, path)


def run_score_local(
    cfg: Config,
    pipeline_root: str | Path,
    log_uri: str,
    output_uri: str = "",
    items_uri: str = "",
    model_uri: str = "models:/em3@champion",
    cache: bool = True,
    runner: str = "subprocess",
) -> dict:
    """Run the scoring pipeline on this machine with ``kfp.local`` (pipelines.run.local_runs); returns the manifest."""
    import json

    import yaml

    from em3.serving.batch import MANIFEST_SUFFIX
    from em3.serving.steps import SCORES
    from pipelines import run

    config = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    with run.local_runs(pipeline_root, cache, runner) as run_here:
        scores = run_here(
            em3_score_pipeline,
            log_uri=log_uri,
            output_uri=output_uri,
            items_uri=items_uri,
            model_uri=model_uri,
            config=config,
        ).output
    return json.loads((Path(scores.path) / (SCORES.removesuffix(".parquet") + MANIFEST_SUFFIX)).read_text())


if __name__ == "__main__":
    compile_score()
