"""The em3 pipeline from Python: its parameters from a config, compiling it, a whole run on this machine
(kfp.local) with its summary, and a run submitted to a Kubeflow Pipelines endpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from em3.comparison import fmt_metric, markdown_table
from em3.config import Config, ConfigError
from em3.workflow import VARIANTS
from pipelines import run
from pipelines.em3_pipeline import PIPELINE_YAML, em3_pipeline, synthetic_data

PARAMETERS = {
    "data_uri": "ingest.source",
    "backbone": "model.backbone",
    "min_auc": "registry.min_auc",
    "min_delta": "registry.min_delta",
    "cold_tolerance": "registry.cold_tolerance",
}
SUMMARY_METRICS = ("auc", "gauc", "logloss", "cold_auc", "material_similarity", "behaviour_similarity")


def pipeline_arguments(cfg: Config, variants: Sequence[str] = VARIANTS) -> dict[str, Any]:
    """The pipeline's parameters for ``cfg``: the keys of PARAMETERS become parameters and leave the ``config``
    text (so a new gate threshold does not invalidate the cached data and training tasks)."""
    values = cfg.model_dump(mode="json")
    arguments: dict[str, Any] = {}
    for parameter, dotted in PARAMETERS.items():
        section, key = dotted.split(".")
        arguments[parameter] = values[section].pop(key)
    config = yaml.safe_dump(values, sort_keys=False)
    return {**arguments, "config": config, "variants": list(variants), "run_date": "", "dataset_uri": ""}


def compile_em3(path: str | Path = PIPELINE_YAML) -> Path:
    """Compile the pipeline to a YAML package for the Kubeflow UI (images from EM3_IMAGE / EM3_GPU_IMAGE)."""
    return run.compile_pipeline(em3_pipeline, path)


def run_local(
    cfg: Config,
    pipeline_root: str | Path,
    variants: Sequence[str] = VARIANTS,
    synthetic: bool = False,
    cache: bool = True,
    runner: str = "subprocess",
    daily: dict[str, str] | None = None,
) -> dict:
    """Run the whole pipeline on this machine with ``kfp.local`` (see pipelines.run.local_runs; with the docker
    runner the MLflow store of the embedded defaults goes under ``pipeline_root``, the one folder the containers
    see). ``daily``: the pipeline's ``run_date`` and ``dataset_uri`` (em3.daily).

    With ``synthetic`` the raw data is first written by the ``synthetic_data`` pipeline (``cfg.raw_synthetic``)
    and ingested from there; otherwise from ``cfg.ingest.source``. ``cache`` reuses a task's earlier outputs when its
    component and inputs are unchanged (ingest, features, training...; never register). Returns the summary:
    ``models`` (evaluate.json's metrics per model), ``registered`` (model, version, alias, reason, candidate),
    ``tracking_uri``, ``pipeline_root``. Raises PipelineError when a task fails.
    """
    pipeline_root = Path(pipeline_root).resolve()
    if runner == "docker":
        from em3.containers import container_config

        cfg = container_config(cfg, pipeline_root, synthetic)
    arguments = {**pipeline_arguments(cfg, variants), **(daily or {})}
    with run.local_runs(pipeline_root, cache, runner) as run_here:
        if synthetic:
            arguments["data_uri"] = run_here(synthetic_data, config=arguments["config"]).output.path
        outputs = run_here(em3_pipeline, **arguments).outputs
    evaluation = json.loads((Path(outputs["evaluation"].path) / "evaluate.json").read_text())
    registered = {key: outputs[key] for key in ("model", "version", "alias", "reason", "candidate")}
    return {
        "models": evaluation["models"],
        "registered": {**registered, "version": int(registered["version"])},
        "tracking_uri": cfg.registry.tracking_uri,
        "pipeline_root": str(pipeline_root),
    }


DAILY = {  # what a replayed day trains with, unless the config says otherwise: em3.daily's settings
    "data.split": "newest_days",
    "data.test_days": 1,
    "data.valid_days": 1,
}


def daily_config(cfg: Config) -> Config:
    """``cfg`` as a replayed day trains with it: ``DAILY``'s settings where ``cfg`` does not set them, and a warm
    start from the champion unless it names another starting point."""
    from em3.config import set_dotted

    values = cfg.model_dump(mode="json")
    for key, value in DAILY.items():
        section, field = key.split(".")
        if field not in getattr(cfg, section).model_fields_set:
            set_dotted(values, key, value)
    values["train"]["init_from"] = values["train"]["init_from"] or f"models:/{cfg.registry.model_name}@champion"
    return type(cfg).model_validate(values)


def replay_local(
    cfg: Config,
    pipeline_root: str | Path,
    days: int,
    variants: Sequence[str] = ("em3",),
    shift: tuple[int, str] | None = None,
    compare_scratch: bool = True,
) -> list[dict]:
    """Replay the last ``days`` days of the local source ``ingest.source`` as daily runs through ``kfp.local``.

    First the days before them become the dataset (a whole run up to the day before, with ``dataset_uri``: the
    first champion); then each day is one run with its run date (the day after it): its partition is ingested and
    checked for drift, the models warm-start from the champion (``train.init_from``), and the gate compares on the
    day. ``shift`` (a replayed day's position, ``labels`` or ``photos``) injects a shift into that day's source.
    With ``compare_scratch`` a model is also trained from scratch on each day's tables, for how many steps the warm
    start saves. Returns a row per day (em3.replay.COLUMNS)."""
    from datetime import timedelta

    from em3.replay import day_results, shifted_source, source_days
    from pipelines.run import PipelineError

    root = Path(pipeline_root).resolve()
    dataset = root / "dataset"
    daily_cfg = daily_config(cfg)
    all_days = source_days(cfg.ingest)
    replayed = all_days[-days:]
    before = (all_days[0], replayed[0] - timedelta(days=1))  # the dataset the replay starts from
    base = daily_cfg.model_copy(update={"ingest": daily_cfg.ingest.model_copy(update={"days": before})})
    run_local(base, root / "runs", variants, daily={"run_date": "", "dataset_uri": str(dataset)})
    rows = []
    for position, day in enumerate(replayed):
        ingest = daily_cfg.ingest
        if shift is not None and shift[0] == position:
            source = shifted_source(cfg.ingest, day, shift[1], root / "shifted" / day.isoformat())
            ingest = ingest.model_copy(update={"source": str(source)})
        daily = {"run_date": (day + timedelta(days=1)).isoformat(), "dataset_uri": str(dataset)}
        try:
            summary = run_local(daily_cfg.model_copy(update={"ingest": ingest}), root / "runs", variants, daily=daily)
        except PipelineError as error:
            rows.append({"day": day.isoformat(), "outcome": _stopped_at(str(error))})
            continue
        registered = summary["registered"]
        run_dir = Path(summary["models"][registered["candidate"]]["run_dir"])
        results = day_results(registered, run_dir, daily_cfg, dataset, root, compare_scratch)
        rows.append({"day": day.isoformat(), "outcome": "registered", **results})
    return rows


def schedule_daily(
    host: str,
    cfg: Config,
    cron: str,
    dataset_uri: str,
    variants: Sequence[str] = VARIANTS,
    experiment: str = "em3",
    name: str = "em3-daily",
    namespace: str | None = None,
) -> str:
    """A recurring run of the pipeline on ``host``: at each ``cron`` time (five fields, as crontab writes them) it
    adds the day before its schedule time to the dataset at ``dataset_uri`` (em3.daily; ``run_date: scheduled``),
    with ``cfg``'s parameters; returns the recurring run's id."""
    fields = cron.split()
    if len(fields) != 5:
        raise ConfigError(f"--cron {cron!r}: expected five fields (minute hour day month weekday), e.g. '0 3 * * *'")
    if not dataset_uri:
        raise ConfigError(
            "a daily run adds its day to a dataset: give --dataset-uri (a folder the pods share, or s3://bucket/prefix)"
        )
    _refuse_local_registry(cfg)
    from em3.daily import SCHEDULED

    arguments = {**pipeline_arguments(cfg, variants), "run_date": SCHEDULED, "dataset_uri": dataset_uri}
    return run.schedule(host, em3_pipeline, arguments, f"0 {cron}", experiment, name, namespace)


def submit(
    host: str,
    cfg: Config,
    variants: Sequence[str] = VARIANTS,
    experiment: str = "em3",
    run_name: str | None = None,
    namespace: str | None = None,
    enable_caching: bool | None = None,
) -> str:
    """Create a run of the pipeline on the Kubeflow Pipelines endpoint ``host`` with ``cfg``'s parameters; returns
    the run id."""
    _refuse_local_registry(cfg)
    arguments = pipeline_arguments(cfg, variants)
    return run.submit(host, em3_pipeline, arguments, experiment, run_name, namespace, enable_caching)


def summary_table(summary: dict) -> str:
    """The summary of a local run: test metrics per model (markdown), the gate's decision and the MLflow UI
    command."""
    from em3.registry.tracking import redact

    rows = [
        {"model": name, **{key: fmt_metric(values.get(key)) for key in SUMMARY_METRICS}}
        for name, values in summary["models"].items()
    ]
    registered = summary["registered"]
    return "\n".join(
        [
            markdown_table(rows, ("model", *SUMMARY_METRICS)),
            "",
            f"Registered: {registered['candidate']} (best validation AUC) as {registered['model']} version "
            f"{registered['version']} → {registered['alias']}",
            f"Gate: {registered['reason']}",
            f"Artifacts of every task: {summary['pipeline_root']}",
            f"MLflow UI: mlflow ui --backend-store-uri {redact(summary['tracking_uri'])}",  # no password from the URL
        ]
    )


def _stopped_at(message: str) -> str:
    """What stopped a replayed day's run, in a line: the validation's failures when that is what it was (read from
    the report the error names), else the error's first line."""
    import re

    message = re.sub(r"\x1b\[[0-9;]*m", "", message)  # kfp.local colours task names
    report = re.search(r"Report: (\S+)report\.md", message)
    if report and (path := Path(report.group(1)) / "report.json").is_file():
        from em3.validation.report import failure_message

        return "stopped by validate: " + failure_message(json.loads(path.read_text())).splitlines()[0].split(": ", 1)[1]
    return "failed: " + message.splitlines()[0][:200]


def _refuse_local_registry(cfg: Config) -> None:
    if cfg.registry.tracking_uri.startswith("sqlite:"):
        raise ConfigError(
            f"registry.tracking_uri is {cfg.registry.tracking_uri!r}: a run on a cluster cannot register into a "
            "local SQLite store; set it to your MLflow server (e.g. --set registry.tracking_uri=http://mlflow:5000)"
        )
