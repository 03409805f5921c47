"""Log a finished training run to MLflow: the config as params, validation metrics per epoch, test metrics, the
config YAML, the model and the plots. No environment values are read (but for the S3 retry defaults, em3.retries).

The model (artifact folder ``model/``) is an MLflow Model of the pyfunc flavour (em3.pyfunc.mlflow_model: the
em3 files, safetensors + config + shapes, under ``artifacts/weights/``, the serving catalogue under
``artifacts/catalogue/``, a signature, an input example, pinned requirements) when the run trained on tables; a
run on synthetic data has no item or user ids to serve, and ``model/`` holds the em3 files alone."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import yaml

from em3.config import Config, RegistryConfig
from em3.retries import set_s3_retry_defaults

if TYPE_CHECKING:
    from mlflow import MlflowClient

GIT_COMMIT, DATA_HASH, TEST_PREFIX, VALID_PREFIX = "git_commit", "data_hash", "test_", "valid_"
MODEL_ARTIFACTS = "model"
SERVING = "serving"  # run tag: "mlflow pyfunc", or why the run has the em3 files only
UNKNOWN = "unknown"
_BATCH = 100  # MLflow's limit of params per log_batch call
P, R = ParamSpec("P"), TypeVar("R")


class RegistryError(RuntimeError):
    """A registry request that cannot be done; the message names the model and version and what to do."""


def client(cfg: RegistryConfig) -> MlflowClient:
    """A client bound to ``cfg.tracking_uri`` for both tracking and the registry (no other global MLflow state);
    MLflow's S3 artifact client retries as em3's own does (em3.retries)."""
    from mlflow import MlflowClient

    set_s3_retry_defaults()
    if redact(cfg.tracking_uri) != cfg.tracking_uri:  # MLflow would print run links with the URL's password
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)


def mlflow_errors_as_registry_errors(function: Callable[P, R]) -> Callable[P, R]:
    """MLflow failures (server unreachable, request refused) become RegistryErrors, any URL password hidden."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from mlflow.exceptions import MlflowException

        try:
            return function(*args, **kwargs)
        except MlflowException as error:
            raise RegistryError(f"MLflow: {redact(error.message)}") from None

    return wrapper


def redact(text: str) -> str:
    """Hide the user-info part of URLs (``http://user:token@host`` → ``http://***@host``)."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


def git_commit() -> str:
    """The commit of the em3 checkout this code runs from, or ``unknown`` outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return done.stdout.strip() or UNKNOWN


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested config values as dotted keys with string values (``{"model.backbone": "din", ...}``)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


@mlflow_errors_as_registry_errors
def log_run(
    cfg: Config, run_dir: str | Path, data_hash: str | None = None, data_dirs: dict[str, str] | None = None
) -> str:
    """Log the training run in ``run_dir`` (``metrics/train.json``, ``model/``, optional ``plots/*.png``) to the
    experiment ``cfg.registry.experiment``; returns the MLflow run id. The serving catalogue is built from the data
    the run trained on, at the paths its saved config names unless ``data_dirs`` (``tables_dir``, ``store_dir``,
    ``validation_dir``) says where this process sees them."""
    from mlflow.entities import Metric, Param

    from em3.models.io import CONFIG, SHAPES, WEIGHTS

    run_dir = Path(run_dir)
    metrics_file, model_dir = run_dir / "metrics" / "train.json", run_dir / MODEL_ARTIFACTS
    needed = [metrics_file, *(model_dir / name for name in (WEIGHTS, CONFIG, SHAPES))]
    missing = [str(path.relative_to(run_dir)) for path in needed if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished training run (missing {', '.join(missing)}): train first")
    result = json.loads(metrics_file.read_text())

    mlflow = client(cfg.registry)
    tags = {GIT_COMMIT: git_commit(), DATA_HASH: data_hash or UNKNOWN, "stopped_by": str(result.get("stopped_by"))}
    run_id = mlflow.create_run(_experiment_id(mlflow, cfg.registry), run_name=cfg.name, tags=tags).info.run_id
    try:
        public = json.loads(redact(json.dumps(cfg.model_dump(mode="json"))))
        values = {**flatten(public), **flatten(result.get("parameters", {}), "parameters.")}
        params = [Param(key, value) for key, value in values.items()]
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{VALID_PREFIX}{key}", float(value), now, row["epoch"])
            for row in result["valid_history"]
            for key, value in row.items()
            if key not in ("epoch", "step") and value is not None
        ]
        metrics += [
            Metric(f"{TEST_PREFIX}{key}", float(value), now, 0)
            for key, value in result["test"].items()
            if value is not None
        ]
        metrics += [
            Metric(key, float(result[key]), now, 0)
            for key in ("steps", "best_epoch", "train_seconds")
            if result.get(key) is not None
        ]
        for start in range(0, max(len(params), len(metrics)), _BATCH):
            mlflow.log_batch(run_id, metrics=metrics[start : start + _BATCH], params=params[start : start + _BATCH])
        mlflow.log_text(run_id, yaml.safe_dump(public, sort_keys=False), "config.yaml")
        mlflow.set_tag(run_id, SERVING, _log_model(mlflow, run_id, model_dir, data_dirs or {}))
        for plot in sorted((run_dir / "plots").rglob("*.png")):
            mlflow.log_artifact(run_id, str(plot), plot.parent.relative_to(run_dir).as_posix())
    except BaseException:
        mlflow.set_terminated(run_id, "FAILED")
        raise
    mlflow.set_terminated(run_id)
    return run_id


def _experiment_id(mlflow: MlflowClient, cfg: RegistryConfig) -> str:
    from mlflow.exceptions import MlflowException

    experiment = mlflow.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        try:
            return mlflow.create_experiment(cfg.experiment, artifact_location=cfg.artifact_location)
        except MlflowException as error:  # another process created it since: use theirs
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = mlflow.get_experiment_by_name(cfg.experiment)
    if experiment.lifecycle_stage == "deleted":
        raise RegistryError(
            f"MLflow experiment {cfg.experiment!r} is deleted at {redact(cfg.tracking_uri)}: restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or set registry.experiment"
        )
    return experiment.experiment_id


def _log_model(mlflow: MlflowClient, run_id: str, model_dir: Path, data_dirs: dict[str, str]) -> str:
    """Log ``model_dir`` as the run's ``model/`` artifacts; returns what the ``serving`` tag says."""
    import shutil
    import tempfile

    from em3.models.io import CONFIG, IDS, SHAPES, WEIGHTS, load_model_dir

    with tempfile.TemporaryDirectory(prefix="em3-log-") as tmp:
        weights = Path(tmp) / "weights"
        weights.mkdir()
        for name in (WEIGHTS, SHAPES, IDS):  # ids: what a warm start from the registered model maps by
            if name != IDS or (model_dir / name).is_file():
                shutil.copyfile(model_dir / name, weights / name)
        (weights / CONFIG).write_text(redact((model_dir / CONFIG).read_text()))
        model, run_cfg = load_model_dir(model_dir)
        data = run_cfg.data.model_copy(update={key: Path(path) for key, path in data_dirs.items()})
        run_cfg = run_cfg.model_copy(update={"data": data})
        if run_cfg.data.source != "tables":
            mlflow.log_artifacts(run_id, str(weights), MODEL_ARTIFACTS)
            return f"em3 files only: trained on data.source {run_cfg.data.source} (no item or user ids to serve)"
        from em3.pyfunc.catalogue import build_catalogue
        from em3.pyfunc.mlflow_model import save_mlflow_model

        catalogue = build_catalogue(model, run_cfg).save(Path(tmp) / "catalogue")
        packaged = save_mlflow_model(Path(tmp) / MODEL_ARTIFACTS, weights, catalogue)
        mlflow.log_artifacts(run_id, str(packaged), MODEL_ARTIFACTS)
    return "mlflow pyfunc"
