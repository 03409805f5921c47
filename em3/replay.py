"""What a local replay of daily runs needs besides the pipeline (``em3 pipeline replay``, pipelines.em3_run): the
days of a source, a source with a shift injected into one day, how fast a warm-started model reaches a
from-scratch one, and the summary as a table and a plot."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from em3.comparison import fmt_metric, markdown_table
from em3.config import Config, ConfigError, IngestConfig

SHIFTS = ("labels", "photos")  # the label rate tripled on the day; no photos delivered with the day
REACH_TOLERANCE = 0.002  # "reaches the from-scratch model's validation AUC" within this


def source_days(cfg: IngestConfig) -> list[date]:
    """The days that the local source's log has events on, in order."""
    root = Path(cfg.source)
    path, column = (
        (root / cfg.native_log, "ts") if cfg.format == "native" else (root / "transactions_train.csv", "t_dat")
    )
    if not path.is_file():
        raise ConfigError(f"{path}: not found; a replay reads a local source (ingest.source)")
    frame = (
        pd.read_parquet(path, columns=[column]) if path.suffix == ".parquet" else pd.read_csv(path, usecols=[column])
    )
    return sorted({stamp.date() for stamp in pd.to_datetime(frame[column]).dt.normalize().unique()})


def shifted_source(cfg: IngestConfig, day: date, shift: str, out: Path) -> Path:
    """A copy of the native source at ``out`` where ``day`` is shifted: ``labels``: its label rate tripled (its
    negatives turned positive, a random share, seeded); ``photos``: no photo comes with it (the run reads a source
    without its images folder)."""
    if cfg.format != "native":
        raise ConfigError(f"a shift is injected into a native impression log; ingest.format is {cfg.format}")
    root = Path(cfg.source)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(root, out, ignore=shutil.ignore_patterns("images") if shift == "photos" else None)
    if shift == "labels":
        path = out / cfg.native_log
        log = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        on_day = pd.to_datetime(log["ts"]).dt.normalize() == pd.Timestamp(day)
        rate = log.loc[on_day, "label"].mean()
        negatives = log.index[on_day & (log["label"] == 0)]
        flip = int(round(min(3 * rate, 1.0) * on_day.sum() - log.loc[on_day, "label"].sum()))
        chosen = np.random.default_rng(0).choice(negatives, size=min(flip, len(negatives)), replace=False)
        log.loc[chosen, "label"] = 1
        if path.suffix == ".parquet":
            log.to_parquet(path, index=False)
        else:
            log.to_csv(path, index=False)
    elif shift != "photos":
        raise ConfigError(f"shift {shift!r}: one of {SHIFTS}")
    return out


def steps_to_reach(history: Sequence[dict[str, Any]], target: float, tolerance: float = REACH_TOLERANCE) -> int | None:
    """The steps after which a validation curve (train.json's ``valid_history``: ``step``, ``auc`` per epoch)
    first reaches ``target`` − ``tolerance``; None if it never does."""
    return next((int(h["step"]) for h in history if h["auc"] >= target - tolerance), None)


def best_point(history: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """(the best validation AUC of a curve, the steps after which it was reached)."""
    best = max(history, key=lambda h: h["auc"])
    return float(best["auc"]), int(best["step"])


def day_results(
    registered: dict, run_dir: Path, cfg: Config, dataset: Path, root: Path, compare_scratch: bool
) -> dict[str, Any]:
    """A replayed day's row: the gate's decision on the ``registered`` model (the pipeline's register outputs;
    trained in ``run_dir``), its metrics, its validation AUC before and after training, its steps and the
    champion's AUC that the gate compared it with; with ``compare_scratch``, a model trained from scratch on the
    day's tables in ``dataset`` (under ``root``/scratch), for the steps the warm start saves."""
    from em3.data.loading import tables_data
    from em3.registry.registry import gate_champion_metrics, model_version
    from em3.train import train

    trained = json.loads((run_dir / "metrics" / "train.json").read_text())
    version = model_version(f"models:/{registered['model']}/{registered['version']}", cfg.registry)
    start = [h["auc"] for h in trained["valid_history"] if h["epoch"] < 0]
    row = {
        "alias": registered["alias"],
        "reason": registered["reason"],
        "test_auc": trained["test"]["auc"],
        "champion_auc": gate_champion_metrics(version).get("auc"),
        "start_valid_auc": start[0] if start else None,
        "valid_auc": trained["valid"]["auc"],
        "steps": trained["steps"],
        "warm_start": trained.get("warm_start"),
    }
    if not compare_scratch:
        return row
    data_cfg = cfg.data.model_copy(update={"tables_dir": dataset / "tables", "store_dir": dataset / "features"})
    scratch_cfg = cfg.model_copy(
        update={
            "name": f"scratch_{registered['candidate']}",
            "output_dir": root / "scratch" / f"v{registered['version']}",
            "data": data_cfg,
            "model": cfg.model.model_copy(update={"variant": trained["variant"], "backbone": trained["backbone"]}),
            "train": cfg.train.model_copy(update={"init_from": None}),
        }
    )
    scratch = train(scratch_cfg, tables_data(data_cfg), test=False).metrics
    scratch_auc, scratch_steps = best_point(scratch["valid_history"])
    reached = steps_to_reach(trained["valid_history"], scratch_auc)
    return {
        **row,
        "scratch_valid_auc": scratch_auc,
        "scratch_steps": scratch_steps,
        "steps_to_reach": reached,
        "share_of_scratch": None if reached is None else reached / max(scratch_steps, 1),
    }


COLUMNS = (
    "day",
    "outcome",
    "alias",
    "test_auc",
    "champion_auc",
    "start_valid_auc",
    "valid_auc",
    "steps",
    "scratch_valid_auc",
    "scratch_steps",
    "steps_to_reach",
    "share_of_scratch",
)


def replay_table(days: list[dict[str, Any]]) -> str:
    """The replay's days as a Markdown table."""
    rows = [{key: _cell(row.get(key)) for key in COLUMNS} for row in days]
    return markdown_table(rows, COLUMNS)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return fmt_metric(value) if isinstance(value, float) else str(value)


def plotted(days: list[dict[str, Any]], key: str) -> list[float]:
    """Each day's ``key`` for a plot: NaN (a gap) where the day has none; 0 stays 0 (a warm start that needed no
    step)."""
    return [np.nan if row.get(key) is None else float(row[key]) for row in days]


def replay_plot(days: list[dict[str, Any]]) -> bytes:
    """PNG: test AUC per day of the registered model and the champion it was compared with (promotions marked),
    and the steps each day's warm-started model trained against the from-scratch model's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [row["day"] for row in days]
    x = np.arange(len(days))
    fig, (auc_ax, steps_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for key, name in (("test_auc", "new model"), ("champion_auc", "champion, same rows")):
        auc_ax.plot(x, plotted(days, key), marker="o", label=name)
    promoted = [i for i, row in enumerate(days) if row.get("alias") == "champion"]
    promoted_auc = [days[i]["test_auc"] for i in promoted]
    auc_ax.scatter(promoted, promoted_auc, s=160, facecolors="none", edgecolors="green", label="promoted")
    for i, row in enumerate(days):
        if row["outcome"] != "registered":
            auc_ax.axvline(i, color="red", alpha=0.3)
            label = row["outcome"].split(":")[0]  # "stopped by validate", "failed": the table has the rest
            auc_ax.annotate(label, (i, auc_ax.get_ylim()[0]), rotation=90, fontsize=7, color="red", va="bottom")
    auc_ax.set(xticks=x, xticklabels=labels, ylabel="test AUC (the day)", title="AUC per day")
    auc_ax.tick_params(axis="x", rotation=45)
    auc_ax.legend(fontsize=8)
    width = 0.4
    steps_ax.bar(x - width / 2, [row.get("steps") or 0 for row in days], width, label="warm start: trained")
    steps_ax.bar(x + width / 2, [row.get("scratch_steps") or 0 for row in days], width, label="from scratch: to best")
    steps_ax.plot(x, plotted(days, "steps_to_reach"), "k^", label="warm start: to reach it")
    steps_ax.set(xticks=x, xticklabels=labels, ylabel="optimiser steps", title="Steps per day")
    steps_ax.tick_params(axis="x", rotation=45)
    steps_ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
