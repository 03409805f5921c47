"""The steps of the scoring pipeline (pipelines/em3_score_pipeline.py), each called by one component:
candidates (the log to score, and the items in it the model never saw) → features of those items only (the frozen
encoders, em3.features) → score (em3.serving.batch) → write (to disk or S3).

Each step reads and writes a folder (a pipeline artifact): ``candidates`` holds ``log.csv`` or ``log.parquet``,
``unseen_items.json`` and ``features.json`` (the encoder settings the model was trained with);
``new_item_features`` a token store (none when no item is new or no items file is given: new items are then
refused, with their reason, by the score step); ``score`` the three files of em3.serving.batch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import yaml

from em3.config import Config
from em3.errors import DataError
from em3.serving.batch import MANIFEST_SUFFIX, QUARANTINE_SUFFIX, fetch_file, publish, read_chunks, score_log

UNSEEN, FEATURES, SCORES = "unseen_items.json", "features.json", "scores.parquet"
# The features settings that decide the tokens: new items are encoded with the model's own, whatever the config says
MODEL_FEATURES = ("image_encoder", "text_encoder", "image_size", "image_grid", "max_text_tokens")
ITEM_COLUMNS = ("text", "image_path")  # besides item_id: what the encoders read (missing: that modality masked)


def candidates(cfg: Config, model_uri: str, log_uri: str, out_dir: Path) -> dict:
    """Copy the log at ``log_uri`` into ``out_dir`` and list the items it names that the model's catalogue lacks."""
    from em3.models.io import CONFIG
    from em3.pyfunc.catalogue import INDEX
    from em3.pyfunc.mlflow_model import CATALOGUE_ARTIFACT, WEIGHTS_ARTIFACT
    from em3.serving.batch import artifact, fetch_model

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="em3-candidates-") as tmp:
        log = shutil.copyfile(fetch_file(log_uri, Path(tmp) / "log"), out_dir / f"log{Path(log_uri).suffix}")
        model = fetch_model(model_uri, cfg, Path(tmp) / "model")
        known = set(json.loads((artifact(model, CATALOGUE_ARTIFACT) / INDEX).read_text())["item_ids"])
        trained = yaml.safe_load((artifact(model, WEIGHTS_ARTIFACT) / CONFIG).read_text()).get("features", {})
    (out_dir / FEATURES).write_text(json.dumps({key: trained[key] for key in MODEL_FEATURES if key in trained}))
    _, chunks = read_chunks(log, log_uri, cfg.score.chunk_rows)
    rows, named = 0, set()
    for _, chunk in chunks:
        rows += len(chunk)
        named.update(chunk["item_id"].str.strip())
    unseen = sorted(named - known - {""})
    (out_dir / UNSEEN).write_text(json.dumps(unseen))
    return {"rows": rows, "items": len(named), "unseen_items": len(unseen)}


def new_item_features(cfg: Config, items_uri: str, candidates_dir: Path, out_dir: Path) -> dict:
    """Encode the unseen items of ``candidates_dir`` from the items file at ``items_uri`` (``item_id``, ``text``,
    ``image_path`` relative to the file's folder; CSV or Parquet, on disk or S3) into a token store at ``out_dir``,
    with the encoder settings the model was trained with (``cfg.features`` gives batch size, device, progress)."""
    from em3.features import run_features
    from em3.ingest.raw import read_table
    from em3.sources import LocalSource, open_source

    unseen = json.loads((candidates_dir / UNSEEN).read_text())
    if not unseen or not items_uri:
        out_dir.mkdir(parents=True, exist_ok=True)
        return {"unseen_items": len(unseen), "encoded": 0, "without_content": len(unseen)}
    parent, _, name = items_uri.rpartition("/")
    source = open_source(parent or ".")
    with tempfile.TemporaryDirectory(prefix="em3-new-items-") as tmp:
        scratch = Path(tmp)
        path = source.local(name, scratch)
        if path is None:
            raise DataError(f"{items_uri}: file not found; expected an items file with item_id, text, image_path")
        items, _ = read_table(path, items_uri, ("item_id",), ITEM_COLUMNS, extra=True)
        items = items[items["item_id"].isin(unseen)].reindex(columns=["item_id", *ITEM_COLUMNS], fill_value="")
        images = [image for image in items["image_path"] if image]
        root = source.root if isinstance(source, LocalSource) else scratch / "images"
        for image in images if not isinstance(source, LocalSource) else ():
            source.fetch(image, root / image)  # a missing photo: the features stage masks that modality
        settings = cfg.features.model_copy(update=json.loads((candidates_dir / FEATURES).read_text()))
        report = run_features(settings, items, root, out_dir)
    return {"unseen_items": len(unseen), "encoded": report["items"], "without_content": len(unseen) - len(items)}


def score(cfg: Config, model_uri: str, candidates_dir: Path, store_dir: Path, out_dir: Path) -> dict:
    """Score the candidates' log into ``out_dir`` (new items from the store of ``new_item_features``)."""
    log = next(path for path in candidates_dir.iterdir() if path.stem == "log")
    store = str(store_dir) if (store_dir / "index.json").is_file() else None
    return score_log(cfg, model_uri, str(log), str(out_dir / SCORES), store)


def write(scores_dir: Path, output_uri: str) -> str:
    """Put the scoring's files at ``output_uri`` (a .parquet path or s3://bucket/key) and beside it."""
    stem = scores_dir / SCORES.removesuffix(".parquet")
    publish(scores_dir / SCORES, Path(f"{stem}{QUARANTINE_SUFFIX}"), Path(f"{stem}{MANIFEST_SUFFIX}"), output_uri)
    return output_uri


def encode_new_items(cfg: Config, model_uri: str, log_uri: str, items_uri: str, store_dir: Path) -> dict:
    """``em3 score --items``: candidates and new_item_features in one go, the token store kept at ``store_dir``
    (a rerun re-encodes only content it has not seen: em3.features reuses the previous store's rows)."""
    with tempfile.TemporaryDirectory(prefix="em3-candidates-") as tmp:
        candidates(cfg, model_uri, log_uri, Path(tmp))
        return new_item_features(cfg, items_uri, Path(tmp), store_dir)
