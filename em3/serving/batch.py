"""``em3 score``: an impression log (CSV or Parquet, on disk or ``s3://``; the native layout without labels) scored
by a registered model into Parquet, with a quarantine of refused rows and a manifest.

Outputs for ``--output DIR/NAME.parquet`` (``s3://bucket/key.parquet`` alike): ``NAME.parquet`` (the input's
columns as text, ``score``, ``cold_item``, ``known_user``), ``NAME.quarantine.parquet`` (``row``: the data row's
number, 1 = first row under the header; the input's columns; ``reason``) and ``NAME.manifest.json`` (model name,
version, run id; the input's sha256, rows in, scored and refused by reason; speed). The log is read, scored and
written ``score.chunk_rows`` rows at a time (memory bounded by the chunk, not the log); each file appears whole or
not at all (em3.atomic locally; one upload per object on S3), the manifest last.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from em3.atomic import write_json
from em3.config import Config
from em3.errors import DataError
from em3.pyfunc.scorer import REQUIRED, Scorer

QUARANTINE_SUFFIX, MANIFEST_SUFFIX = ".quarantine.parquet", ".manifest.json"
CSV_BLOCK = 1 << 24  # bytes of CSV parsed at a time (then cut into chunks of chunk_rows)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what the manifest names, and its downloaded MLflow Model folder."""

    uri: str
    name: str | None
    version: int | None
    run_id: str
    path: Path


def fetch_model(uri: str, cfg: Config, dst: Path) -> ModelRef:
    """Download the MLflow Model of ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID``."""
    from mlflow.artifacts import download_artifacts

    from em3.registry.registry import artifact_progress, model_version
    from em3.registry.tracking import MODEL_ARTIFACTS, RegistryError, mlflow_errors_as_registry_errors

    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/")[0]
        name, version, source = None, None, f"runs:/{run_id}/{MODEL_ARTIFACTS}"
    else:
        found = model_version(uri, cfg.registry)
        name, version, run_id, source = found.name, int(found.version), found.run_id, found.source
    download = mlflow_errors_as_registry_errors(download_artifacts)
    with artifact_progress(cfg.score.progress):
        path = Path(download(artifact_uri=source, dst_path=str(dst), tracking_uri=cfg.registry.tracking_uri))
    if not (path / "MLmodel").is_file():
        raise RegistryError(
            f"{uri} (run {run_id}) has no MLflow Model to serve: logged before serving existed "
            "or trained on synthetic data; log and register a run trained on tables"
        )
    return ModelRef(uri, name, version, run_id, path)


def artifact(model: ModelRef, name: str) -> Path:
    """The folder of the MLflow Model's artifact ``name`` (WEIGHTS_ARTIFACT or CATALOGUE_ARTIFACT)."""
    import yaml

    artifacts = yaml.safe_load((model.path / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    return model.path / artifacts[name]["path"]


def open_scorer(model: ModelRef, cfg: Config) -> Scorer:
    """The scorer of a downloaded MLflow Model, on ``score.device``."""
    from em3.device import resolve_device
    from em3.models.io import load_model_dir
    from em3.pyfunc.catalogue import Catalogue
    from em3.pyfunc.mlflow_model import CATALOGUE_ARTIFACT, WEIGHTS_ARTIFACT

    ranker, _ = load_model_dir(artifact(model, WEIGHTS_ARTIFACT), str(resolve_device(cfg.score.device, "score.device")))
    return Scorer(ranker, Catalogue.load(artifact(model, CATALOGUE_ARTIFACT)), cfg.score.batch_size)


def score_log(cfg: Config, model_uri: str, input_uri: str, output_uri: str, store_dir: str | None = None) -> dict:
    """Score the log at ``input_uri`` with the model at ``model_uri`` into ``output_uri`` (see the module's
    docstring); new items take their content from the token store ``store_dir``. Returns the manifest."""
    from em3.progress import progress_bar

    if not output_uri.endswith(".parquet"):
        raise DataError(f"--output {output_uri}: expected a .parquet file (local or s3://)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="em3-score-") as tmp:
        scratch = Path(tmp)
        model = fetch_model(model_uri, cfg, scratch / "model")
        scorer = open_scorer(model, cfg)
        scorer.use_store(store_dir)
        log = fetch_file(input_uri, scratch / "input")
        outputs = {name: scratch / "out" / name for name in ("scores", "quarantine")}
        outputs["scores"].parent.mkdir()
        reasons: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        columns, chunks = read_chunks(log, input_uri, cfg.score.chunk_rows)
        text = [pa.field(column, pa.string()) for column in columns]
        writers = {
            "scores": pq.ParquetWriter(
                outputs["scores"],
                pa.schema([*text, ("score", pa.float64()), ("cold_item", pa.bool_()), ("known_user", pa.bool_())]),
            ),
            "quarantine": pq.ParquetWriter(
                outputs["quarantine"], pa.schema([("row", pa.int64()), *text, ("reason", pa.string())])
            ),
        }
        with progress_bar(desc=f"scoring {input_uri}", unit="row", disable=not cfg.score.progress) as bar:
            for first_row, chunk in chunks:
                scores = scorer.score(chunk)
                ok = scores.reason == ""
                scored = chunk[ok].assign(
                    score=scores.score[ok], cold_item=scores.cold_item[ok], known_user=scores.known_user[ok]
                )
                refused = chunk[~ok].assign(reason=scores.reason[~ok].astype(str))
                refused.insert(0, "row", refused.index + first_row)
                for name, part in (("scores", scored), ("quarantine", refused)):
                    writers[name].write_table(pa.Table.from_pandas(part, writers[name].schema, preserve_index=False))
                reasons.update(refused["reason"])
                counts.update(
                    rows=len(chunk),
                    scored=int(ok.sum()),
                    cold=int(scores.cold_item.sum()),
                    unknown_users=int((ok & ~scores.known_user).sum()),
                )
                bar.update(len(chunk))
        for writer in writers.values():
            writer.close()
        if not counts["rows"]:
            raise DataError(f"{input_uri}: no data rows; expected at least one row under the header")
        seconds = time.perf_counter() - started
        quarantine_uri = output_uri.removesuffix(".parquet") + QUARANTINE_SUFFIX
        manifest = {
            "model": {"uri": model.uri, "name": model.name, "version": model.version, "run_id": model.run_id},
            "input": {"uri": input_uri, "sha256": _sha256(log), "rows": counts["rows"]},
            "output": {"uri": output_uri, "rows": counts["scored"]},
            "quarantine": {"uri": quarantine_uri, "rows": sum(reasons.values()), "reasons": dict(reasons)},
            "cold_item_rows": counts["cold"],
            "unknown_user_rows": counts["unknown_users"],
            "token_store": store_dir,
            "device": str(scorer.device),
            "seconds": round(seconds, 3),
            "rows_per_s": round(counts["rows"] / seconds, 1),
        }
        write_json(scratch / "out" / "manifest", manifest)
        publish(outputs["scores"], outputs["quarantine"], scratch / "out" / "manifest", output_uri)
    return manifest


def publish(scores: Path, quarantine: Path, manifest: Path, output_uri: str) -> None:
    """Put a scoring's three files at ``output_uri`` and beside it, each whole; the manifest last (it marks a
    complete output)."""
    stem = output_uri.removesuffix(".parquet")
    targets = (output_uri, stem + QUARANTINE_SUFFIX, stem + MANIFEST_SUFFIX)
    for path, target in zip((scores, quarantine, manifest), targets, strict=True):
        put_file(path, target)


def read_chunks(path: Path, name: str, chunk_rows: int) -> tuple[list[str], Iterator[tuple[int, pd.DataFrame]]]:
    """The columns of a CSV or Parquet log, and its chunks: (number of the chunk's first data row, its rows as
    text); a DataError naming the file when it is not such a log or lacks a required column."""
    if not path.stat().st_size:
        raise DataError(f"{name}: empty file (0 bytes); expected an impression log with columns {list(REQUIRED)}")
    if path.suffix == ".parquet":
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
            columns = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{name}: not a readable Parquet file ({exc})") from None
    elif path.suffix == ".csv":
        from pyarrow import csv as pacsv

        try:
            columns = pd.read_csv(path, nrows=0, dtype=str).columns.tolist()
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{name}: not a readable CSV header ({exc})") from None
        try:
            batches = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
                convert_options=pacsv.ConvertOptions(
                    column_types={column: pa.string() for column in columns}, strings_can_be_null=False
                ),
            )
        except pa.ArrowException as exc:
            raise DataError(f"{name}: not a readable CSV ({exc})") from None
    else:
        raise DataError(f"{name}: unsupported file type {path.suffix!r}; expected .csv or .parquet")
    missing = [column for column in REQUIRED if column not in columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}; expected an impression log with {list(REQUIRED)}")

    def chunks() -> Iterator[tuple[int, pd.DataFrame]]:
        first = 1
        try:
            for batch in batches:
                text = pa.table(
                    [pc.fill_null(pc.cast(column, pa.string()), "") for column in batch.columns],
                    names=batch.schema.names,
                ).to_pandas()
                for start in range(0, len(text), chunk_rows):
                    part = text.iloc[start : start + chunk_rows].reset_index(drop=True)
                    yield first, part
                    first += len(part)
        except pa.ArrowException as exc:
            raise DataError(f"{name}: unreadable after data row {first - 1} ({exc})") from None

    return columns, chunks()


def fetch_file(uri: str, scratch: Path) -> Path:
    """A local path holding the file ``uri`` (a local path, or ``s3://bucket/key`` downloaded under ``scratch``)."""
    from em3.sources import open_source

    if not uri.startswith("s3://"):
        if not Path(uri).is_file():
            raise DataError(f"{uri}: file not found; expected an impression log (.csv or .parquet)")
        return Path(uri)
    parent, _, name = uri.rpartition("/")
    path = open_source(parent).local(name, scratch)
    if path is None:
        raise DataError(f"{uri}: file not found; expected an impression log (.csv or .parquet)")
    return path


def put_file(path: Path, uri: str) -> None:
    """Copy ``path`` to ``uri`` whole or not at all: a local rename (em3.atomic), or one S3 upload."""
    import shutil

    from em3.atomic import atomic_file

    if not uri.startswith("s3://"):
        with atomic_file(Path(uri)) as tmp:
            shutil.copyfile(path, tmp)
        return
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    from em3.retries import s3_client_config

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        boto3.client("s3", config=s3_client_config()).upload_file(str(path), bucket, key)
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise DataError(f"{uri}: cannot write ({exc})") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
