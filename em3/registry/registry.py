"""The model registry: register a logged run behind the gate, promote, roll back, list, and load by URI.

Everything is recorded on the registered model in MLflow: each version carries its run's git commit, data hash,
test metrics (``test_*``) and the gate's decision (``gate_decision``, ``gate_reason``); a version made champion
records the champion it replaced (``previous_champion``), which is what rollback follows. Every alias change is
audited: ``<event>_by`` / ``_at`` / ``_reason`` tags on the version, plus one ``audit.<time>.<event>.v<N>`` tag on the
registered model per change, so repeated changes keep their whole history. Alias changes of one model happen
one writer at a time (em3.registry.lock), so concurrent registrations are decided as if one after the other.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from em3.config import Config, RegistryConfig
from em3.registry.gate import CHALLENGER, CHAMPION, decide
from em3.registry.lock import model_lock
from em3.registry.tracking import (
    DATA_HASH,
    GIT_COMMIT,
    MODEL_ARTIFACTS,
    TEST_PREFIX,
    UNKNOWN,
    RegistryError,
    client,
    mlflow_errors_as_registry_errors,
    redact,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from em3.models.ranker import Ranker

GATE_DECISION, GATE_REASON, PREVIOUS_CHAMPION = "gate_decision", "gate_reason", "previous_champion"
GATE_CHAMPION_PREFIX = "gate_champion."  # version tags: the champion's metrics that the gate compared with
PYFUNC_WEIGHTS = "artifacts/weights"  # where log_run's MLflow Model keeps the em3 files (em3.pyfunc.mlflow_model)
_MODEL_URI = re.compile(r"^models:/(?P<name>[\w.-]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


@mlflow_errors_as_registry_errors
def register(cfg: Config, run_id: str, champion_scores: dict | None = None, drift: tuple[str, ...] = ()) -> dict:
    """Create a version of ``cfg.registry.model_name`` from the run's ``model/`` artifacts and give it the alias
    the gate decides (``champion`` or ``challenger``); returns model, version, alias, reason and run_id.
    ``champion_scores`` (em3.registry.champion.champion_on_test): the champion's metrics on the run's test rows,
    which the gate compares with when they are of the champion of the moment; else the champion's own test
    metrics (as registered, on its own test rows), and the reason says which. ``drift``: what the validation of
    the run's data flagged (em3.workflow.drift_flags), which keeps it challenger (registry.promote_despite_drift)."""
    from em3.models.io import WEIGHTS

    rc, mlflow = cfg.registry, client(cfg.registry)
    run = mlflow.get_run(run_id)
    logged = [f"{MODEL_ARTIFACTS}/{WEIGHTS}", f"{MODEL_ARTIFACTS}/{PYFUNC_WEIGHTS}/{WEIGHTS}"]
    if not any(
        item.path in logged
        for folder in (MODEL_ARTIFACTS, f"{MODEL_ARTIFACTS}/{PYFUNC_WEIGHTS}")
        for item in mlflow.list_artifacts(run_id, folder)
    ):
        raise RegistryError(f"run {run_id} has no {MODEL_ARTIFACTS}/ artifacts: log it with em3.registry.log_run")
    candidate = {
        key.removeprefix(TEST_PREFIX): value for key, value in run.data.metrics.items() if key.startswith(TEST_PREFIX)
    }
    with model_lock(mlflow, rc.model_name, _user()):  # decide against the champion of the moment, alone
        _ensure_model(mlflow, rc.model_name)
        champion = _alias_version(mlflow, rc, CHAMPION)
        theirs, compared_on = _champion_metrics(champion, champion_scores)
        decision = decide(candidate, theirs, rc, compared_on, drift)
        tags = {
            GIT_COMMIT: run.data.tags.get(GIT_COMMIT, UNKNOWN),
            DATA_HASH: run.data.tags.get(DATA_HASH, UNKNOWN),
            **{f"{TEST_PREFIX}{key}": repr(value) for key, value in candidate.items()},
            GATE_DECISION: decision.alias,
            GATE_REASON: decision.reason,
            **{
                f"{GATE_CHAMPION_PREFIX}{key}": repr(float(value))
                for key, value in (theirs or {}).items()
                if isinstance(value, int | float)
            },
        }
        source = f"runs:/{run_id}/{MODEL_ARTIFACTS}"
        version = int(mlflow.create_model_version(rc.model_name, source, run_id=run_id, tags=tags).version)
        if decision.alias == CHAMPION:
            _make_champion(mlflow, rc, version, f"gate: {decision.reason}", record_previous=True)
        else:
            _set_alias(mlflow, rc.model_name, CHALLENGER, version, f"gate: {decision.reason}")
    return {
        "model": rc.model_name,
        "version": version,
        "alias": decision.alias,
        "reason": decision.reason,
        "run_id": run_id,
    }


@mlflow_errors_as_registry_errors
def promote(cfg: Config, version: int, reason: str) -> dict:
    """Make ``version`` the champion whatever the gate said (audited with ``reason``)."""
    rc, mlflow = cfg.registry, client(cfg.registry)
    if not reason.strip():
        raise RegistryError(f"promoting version {version} of model {rc.model_name!r} needs a reason (--reason ...)")
    with model_lock(mlflow, rc.model_name, _user()):
        target = _version(mlflow, rc, version)
        current = _alias_version(mlflow, rc, CHAMPION)
        if current is not None and int(current.version) == int(target.version):
            raise RegistryError(f"version {version} of model {rc.model_name!r} is already the champion")
        _make_champion(mlflow, rc, target.version, f"promote: {reason}", record_previous=True)
    return {
        "model": rc.model_name,
        "version": int(target.version),
        "alias": CHAMPION,
        "reason": reason,
        "previous_champion": int(current.version) if current else None,
    }


@mlflow_errors_as_registry_errors
def rollback(cfg: Config, reason: str) -> dict:
    """Give ``champion`` back to the version the current champion replaced (audited with ``reason``)."""
    rc, mlflow = cfg.registry, client(cfg.registry)
    with model_lock(mlflow, rc.model_name, _user()):
        current = _alias_version(mlflow, rc, CHAMPION)
        if current is None:
            raise RegistryError(f"model {rc.model_name!r} has no champion: nothing to roll back")
        previous = current.tags.get(PREVIOUS_CHAMPION)
        if previous is None:
            raise RegistryError(
                f"version {current.version} of model {rc.model_name!r} replaced no earlier champion: nothing to roll "
                "back to; make another version champion with `em3 promote --version N --reason ...`"
            )
        target = _version(mlflow, rc, previous)
        _make_champion(
            mlflow, rc, target.version, f"rollback from version {current.version}: {reason}", record_previous=False
        )
        _audit(mlflow, rc.model_name, current.version, "rolled_back", reason)
    return {
        "model": rc.model_name,
        "version": int(target.version),
        "alias": CHAMPION,
        "reason": reason,
        "rolled_back": int(current.version),
    }


@mlflow_errors_as_registry_errors
def history(cfg: Config) -> list[dict]:
    """Every version of the registered model, oldest first: version, aliases, creation time, run id and tags."""
    rc, mlflow = cfg.registry, client(cfg.registry)
    aliases: dict[int, list[str]] = {}
    for alias, version in _model(mlflow, rc).aliases.items():
        aliases.setdefault(int(version), []).append(alias)
    versions = sorted(mlflow.search_model_versions(f"name = '{rc.model_name}'"), key=lambda v: int(v.version))
    return [
        {
            "version": int(v.version),
            "aliases": sorted(aliases.get(int(v.version), [])),
            "created_at": _iso(datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)),
            "run_id": v.run_id,
            "tags": dict(v.tags),
        }
        for v in versions
    ]


@mlflow_errors_as_registry_errors
def model_version(uri: str, cfg: RegistryConfig | None = None) -> ModelVersion:
    """The registered version at ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (a RegistryError naming the
    model, alias or version that does not exist)."""
    match = _MODEL_URI.match(uri)
    if match is None:
        raise RegistryError(f"{uri!r} is not a model URI: use models:/NAME@ALIAS or models:/NAME/VERSION")
    rc = (cfg or RegistryConfig()).model_copy(update={"model_name": match["name"]})
    mlflow = client(rc)
    version = _version(mlflow, rc, match["version"]) if match["version"] else _alias_version(mlflow, rc, match["alias"])
    if version is None:
        raise RegistryError(f"model {rc.model_name!r} has no alias {match['alias']!r}: `em3 models` lists aliases")
    return version


@mlflow_errors_as_registry_errors
def load(uri: str, cfg: RegistryConfig | None = None, device: str = "cpu") -> Ranker:
    """Rebuild the model at ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` from its safetensors, config and
    shapes (no pickle), in eval mode on ``device``."""
    from em3.models.io import load_model_dir

    with fetched_model_dir(uri, cfg) as path:
        model, _ = load_model_dir(path, device)
    return model


@contextmanager
def fetched_model_dir(uri: str, cfg: RegistryConfig | None = None, progress: bool = True) -> Iterator[Path]:
    """The em3 model folder (weights, config, shapes, ids) of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``,
    downloaded into a temporary folder named after the version (``em3-<name>-v<N>-...``) for the duration;
    ``progress=False`` silences MLflow's own download bar (a bar a line per file in a pipeline's log)."""
    from mlflow.artifacts import download_artifacts

    version = model_version(uri, cfg)
    tracking_uri = (cfg or RegistryConfig()).tracking_uri
    with tempfile.TemporaryDirectory(prefix=f"em3-{version.name}-v{version.version}-") as tmp:
        download = mlflow_errors_as_registry_errors(download_artifacts)
        with artifact_progress(progress):
            path = Path(download(artifact_uri=version.source, dst_path=tmp, tracking_uri=tracking_uri))
        yield em3_files(path)


@contextmanager
def artifact_progress(enabled: bool) -> Iterator[None]:
    """MLflow's artifact progress bars on or off for the duration (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, read
    when a transfer starts); the variable is restored after."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "true" if enabled else "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def em3_files(path: Path) -> Path:
    """The em3 model folder (safetensors, config, shapes) in a downloaded ``model/`` artifact folder: the
    MLflow Model's ``weights`` artifact, or the folder itself for a run logged without an MLflow Model."""
    import yaml

    from em3.pyfunc.mlflow_model import WEIGHTS_ARTIFACT

    if not (path / "MLmodel").is_file():
        return path
    artifacts = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    return path / artifacts[WEIGHTS_ARTIFACT]["path"]


def _make_champion(mlflow: MlflowClient, rc: RegistryConfig, version: int, reason: str, record_previous: bool) -> None:
    """Move ``champion`` to ``version`` (dropping its ``challenger`` alias); with ``record_previous`` the version
    remembers the champion it replaces, for rollback."""
    current = _alias_version(mlflow, rc, CHAMPION)
    if record_previous and current is not None:
        mlflow.set_model_version_tag(rc.model_name, str(version), PREVIOUS_CHAMPION, str(current.version))
    if int(_model(mlflow, rc).aliases.get(CHALLENGER, 0)) == version:
        mlflow.delete_registered_model_alias(rc.model_name, CHALLENGER)
    _set_alias(mlflow, rc.model_name, CHAMPION, version, reason)


def _set_alias(mlflow: MlflowClient, name: str, alias: str, version: int, reason: str) -> None:
    mlflow.set_registered_model_alias(name, alias, str(version))
    _audit(mlflow, name, version, alias, reason)


def _audit(mlflow: MlflowClient, name: str, version: int, event: str, reason: str) -> None:
    """Who, when and why, on the version (latest per event) and on the registered model (every change)."""
    now = datetime.now(UTC)
    entry = {"by": _user(), "at": _iso(now), "reason": reason}
    for key, value in entry.items():
        mlflow.set_model_version_tag(name, str(version), f"{event}_{key}", value)
    log_key = f"audit.{now.strftime('%Y%m%dT%H%M%S%fZ')}.{event}.v{version}"
    mlflow.set_registered_model_tag(name, log_key, json.dumps({"event": event, "version": version, **entry}))


def _ensure_model(mlflow: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _model(mlflow: MlflowClient, rc: RegistryConfig):
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.get_registered_model(rc.model_name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    raise RegistryError(
        f"model {rc.model_name!r} is not registered at {redact(rc.tracking_uri)}: register a run first (em3 register)"
    )


def _version(mlflow: MlflowClient, rc: RegistryConfig, version: int | str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    _model(mlflow, rc)
    try:
        return mlflow.get_model_version(rc.model_name, str(version))
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    raise RegistryError(f"model {rc.model_name!r} has no version {version}: `em3 history` lists the versions")


def _alias_version(mlflow: MlflowClient, rc: RegistryConfig, alias: str) -> ModelVersion | None:
    version = _model(mlflow, rc).aliases.get(alias)
    return None if version is None else mlflow.get_model_version(rc.model_name, str(version))


def _champion_metrics(champion: ModelVersion | None, scores: dict | None) -> tuple[dict | None, str]:
    """What the gate compares with, and where those metrics come from (said in its reason)."""
    if champion is None:
        return None, ""
    if scores is not None and scores.get("version") == int(champion.version) and "metrics" in scores:
        return scores["metrics"], f"champion v{champion.version} scored on this run's test rows"
    why = scores.get("skipped", "scored for another version") if scores else "not scored on this run's test rows"
    return _test_metrics(champion), f"champion v{champion.version}'s own test metrics ({why})"


def _test_metrics(version: ModelVersion) -> dict[str, float]:
    return _tagged_metrics(version, TEST_PREFIX)


def gate_champion_metrics(version: ModelVersion) -> dict[str, float]:
    """The champion's metrics that the gate compared ``version`` with (empty when there was no champion); where
    they come from is in the version's gate reason."""
    return _tagged_metrics(version, GATE_CHAMPION_PREFIX)


def _tagged_metrics(version: ModelVersion, prefix: str) -> dict[str, float]:
    return {key.removeprefix(prefix): float(value) for key, value in version.tags.items() if key.startswith(prefix)}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment and no passwd entry (some containers)
        return UNKNOWN


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
