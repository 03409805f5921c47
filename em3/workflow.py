"""What the workflow's steps share beyond the stages (DESIGN §6): what the Kubeflow components call (metrics for
the UI, registering the best trained run) and what the code that runs them shares with the command line (the
variants, the local runners, the error of a failed run). It knows no orchestrator: the pipelines, their components
and the code that compiles, runs and submits them are the packages ``pipelines`` and ``components`` of the same
distribution, above this one (``pipelines/cli.py`` adds their commands to ``em3``).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from em3.config import Config, load_config

VARIANTS = ("id_only", "two_stage", "em3")
RUNNERS = ("subprocess", "docker")  # kfp.local: each task a subprocess of this environment, or a container


class PipelineError(RuntimeError):
    """A local run failed: a task failed (its error is in its log), or there is nothing to run its containers."""


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


def register_best(
    cfg: Config,
    run_dirs: Sequence[str | Path],
    plots_dir: Path | None,
    data_sha: str,
    data_dirs: dict[str, str] | None = None,
) -> dict:
    """Log the best of ``run_dirs`` to MLflow (its own config, the registry settings of ``cfg``, the evaluation
    plots) and register it behind the gate; returns em3.registry.register's result plus ``candidate`` (its name).
    ``data_dirs`` (``tables_dir``, ``validation_dir``, ``store_dir``) say where this process sees the data the run
    trained on, when not at the paths training saw (another pod): its serving catalogue is built from them."""
    from em3.models.io import CONFIG
    from em3.registry import log_run, register

    run_dir = best_run(run_dirs)
    run_cfg = load_config(run_dir / "model" / CONFIG).model_copy(update={"registry": cfg.registry})
    champion = champion_scores(run_dir, cfg, data_dirs)
    drift = drift_flags(Path((data_dirs or {}).get("validation_dir", run_cfg.data.validation_dir)))
    with tempfile.TemporaryDirectory(prefix="em3-register-") as tmp:
        staged = Path(tmp)
        for part in ("model", "metrics"):
            shutil.copytree(run_dir / part, staged / part)
        if plots_dir is not None and plots_dir.is_dir():
            shutil.copytree(plots_dir, staged / "plots")
        result = register(run_cfg, log_run(run_cfg, staged, data_hash=data_sha, data_dirs=data_dirs), champion, drift)
    return {**result, "candidate": run_cfg.name}


def drift_flags(validation_dir: Path) -> tuple[str, ...]:
    """The drift checks that warned in the validation report in ``validation_dir`` (none without a report)."""
    report = Path(validation_dir) / "report.json"
    if not report.is_file():
        return ()
    checks = json.loads(report.read_text()).get("drift", {}).get("checks", [])
    return tuple(
        f"{c['check']} of {c['column']} {c['score']:.4g} > {c['limit']:.4g}" for c in checks if c["status"] == "warn"
    )


def champion_scores(run_dir: Path, cfg: Config, data_dirs: dict[str, str] | None = None) -> dict | None:
    """The champion scored on the test rows of the run in ``run_dir`` (em3.registry.champion), for the gate of
    ``register``; None when ``registry.rescore_champion`` is off or the run did not train on tables.
    ``data_dirs``: where this process sees the run's data, as for ``register_best``."""
    from em3.models.io import CONFIG

    run_cfg = load_config(Path(run_dir) / "model" / CONFIG).model_copy(update={"registry": cfg.registry})
    if not cfg.registry.rescore_champion or run_cfg.data.source != "tables":
        return None
    from em3.data.loading import tables_data
    from em3.registry.champion import champion_on_test

    data = run_cfg.data.model_copy(update={key: Path(path) for key, path in (data_dirs or {}).items()})
    return champion_on_test(run_cfg, tables_data(data))


@contextmanager
def fetched_init(cfg: Config) -> Iterator[Config]:
    """``cfg`` with ``train.init_from`` a local model folder: a registered model (``models:/NAME@ALIAS``) is
    downloaded for the duration (em3.train.warm_start reads folders only); when there is none yet (no such model
    or alias: a daily pipeline's first run), training starts from scratch and says so."""
    source = cfg.train.init_from
    if not source or not source.startswith("models:/"):
        yield cfg
        return
    from em3.registry.registry import fetched_model_dir, model_version
    from em3.registry.tracking import RegistryError

    try:
        model_version(source, cfg.registry)
    except RegistryError as error:  # a daily pipeline's first run: nothing to start from yet
        print(f"train.init_from {source}: {error}; training from scratch", flush=True)
        yield cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": None})})
        return
    with fetched_model_dir(source, cfg.registry, progress=cfg.train.progress) as path:
        print(f"warm start from {source}: {path}", flush=True)
        yield cfg.model_copy(update={"train": cfg.train.model_copy(update={"init_from": str(path)})})
