"""Scoring components: the steps of pipelines/em3_score_pipeline.py, each a thin call into ``em3.serving.steps``.

Component bodies run in the image (or a kfp.local subprocess): imports go inside them, logic lives in ``em3``.
``config`` is the pipeline's config parameter (YAML text, see em3/config.py): ``registry`` says where the model
is, ``features`` how new items are encoded (the model's settings), ``score`` the chunk and batch sizes.
"""

from kfp.dsl import Dataset, Input, Metrics, Output, component

from em3.cluster import EM3_IMAGE


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def candidates(config: str, model_uri: str, log_uri: str, log: Output[Dataset]) -> int:
    """Take the impression log to score and list the items in it that the model never saw.

    Args:
        config: The em3 config as YAML (the pipeline's config parameter).
        model_uri: The model: models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID.
        log_uri: The impression log (user_id, item_id, ts[, sales_channel_id]; .csv or .parquet, a path or s3://).

    Returns:
        log: The log and unseen_items.json; metadata: rows, items, unseen_items.
        Output: How many items of the log the model never saw.
    """
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.serving.steps import candidates as take

    found = take(config_from_yaml(config, "config parameter"), model_uri, log_uri, Path(log.path))
    log.metadata.update(found)
    return found["unseen_items"]


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def new_item_features(config: str, items_uri: str, candidates: Input[Dataset], store: Output[Dataset]):
    """The frozen encoders over the unseen items only (GPU when the pod has one) → a token store of new items.

    Args:
        config: The em3 config as YAML; its features section must be the model's.
        items_uri: Items file with item_id, text, image_path (relative to its folder), a path or s3://; "" for none.
        candidates: The candidates step's output.

    Returns:
        store: The token store of the new items (empty when none is new); metadata: unseen_items, encoded,
            without_content.
    """
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.serving.steps import new_item_features as encode

    cfg = config_from_yaml(config, "config parameter")
    store.metadata.update(encode(cfg, items_uri, Path(candidates.path), Path(store.path)))


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def score(config: str, model_uri: str, candidates: Input[Dataset], store: Input[Dataset], scores: Output[Dataset],
          metrics: Output[Metrics]):  # fmt: skip
    """Score every row of the log: scores, quarantine of refused rows with reasons, manifest.

    Args:
        config: The em3 config as YAML (registry and score sections).
        model_uri: The model: models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID.
        candidates: The candidates step's output.
        store: The token store of new items.

    Returns:
        scores: scores.parquet, scores.quarantine.parquet and scores.manifest.json.
        metrics: rows, rows scored and refused, rows per second.
    """
    from pathlib import Path

    from em3.config import config_from_yaml
    from em3.serving.steps import score as run
    from em3.workflow import log_metrics

    cfg = config_from_yaml(config, "config parameter")
    manifest = run(cfg, model_uri, Path(candidates.path), Path(store.path), Path(scores.path))
    scores.metadata.update({"model": manifest["model"]["uri"], "run_id": manifest["model"]["run_id"]})
    log_metrics(metrics, {"rows": manifest["input"]["rows"], "rows_scored": manifest["output"]["rows"],
                          "rows_refused": manifest["quarantine"]["rows"], "rows_per_s": manifest["rows_per_s"]})


@component(base_image=EM3_IMAGE, install_kfp_package=False)
def write(scores: Input[Dataset], output_uri: str) -> str:
    """Put the scores, quarantine and manifest at output_uri and beside it (each whole, the manifest last).

    Args:
        scores: The score step's output.
        output_uri: Where: a .parquet path or s3://bucket/key.parquet; "" keeps them in the pipeline's artifacts.

    Returns:
        Output: output_uri.
    """
    from pathlib import Path

    from em3.serving.steps import write as put

    return put(Path(scores.path), output_uri) if output_uri else ""
