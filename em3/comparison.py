"""The comparison table of trained models, read from their ``metrics/train.json`` files."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

COLUMNS = (
    "run",
    "model",
    "backbone",
    "seed",
    "auc",
    "gauc",
    "logloss",
    "cold_auc",
    "Δauc vs two_stage",
    "params",
    "seconds",
)


def fmt_metric(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def comparison_rows(metrics: Iterable[dict]) -> list[dict[str, str]]:
    """One row per run; the AUC change is relative to the ``two_stage`` run of the same backbone and seed (like with
    like), "n/a" when there is none and "ambiguous" when there are several."""
    runs = list(metrics)
    baselines: dict[tuple, list[float | None]] = defaultdict(list)
    for m in runs:
        if m["variant"] == "two_stage":
            baselines[m["backbone"], m.get("seed")].append(m["test"]["auc"])
    rows = []
    for m in runs:
        test, same = m["test"], baselines.get((m["backbone"], m.get("seed")), [])
        if m["variant"] == "two_stage" or not same or same[0] in (None, 0) or test["auc"] is None:
            delta = "n/a"
        else:
            delta = "ambiguous" if len(same) > 1 else f"{100 * (test['auc'] / same[0] - 1):+.2f} %"
        rows.append(
            {
                "run": m.get("name", "n/a"),
                "model": m["variant"],
                "backbone": m["backbone"],
                "seed": str(m.get("seed", "n/a")),
                "auc": fmt_metric(test["auc"]),
                "gauc": fmt_metric(test["gauc"]),
                "logloss": fmt_metric(test["logloss"]),
                "cold_auc": fmt_metric(test["cold_auc"]),
                "Δauc vs two_stage": delta,
                "params": f"{m['parameters']['trainable']:,}",
                "seconds": fmt_metric(m["train_seconds"], 1),
            }
        )
    return rows


def markdown_table(rows: list[dict[str, str]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def read_metrics(paths: Iterable[str | Path]) -> list[dict]:
    return [json.loads(Path(path).read_text()) for path in paths]
