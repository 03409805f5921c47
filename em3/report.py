"""The comparison table of trained models, read from their ``metrics/train.json`` files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

COLUMNS = (
    "model",
    "backbone",
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
    """One row per run; the AUC change is relative to ``two_stage`` on the same backbone, when present."""
    runs = list(metrics)
    baseline = {m["backbone"]: m["test"]["auc"] for m in runs if m["variant"] == "two_stage"}
    rows = []
    for m in runs:
        test, base = m["test"], baseline.get(m["backbone"])
        delta = "n/a" if base in (None, 0) or test["auc"] is None else f"{100 * (test['auc'] / base - 1):+.2f} %"
        rows.append(
            {
                "model": m["variant"],
                "backbone": m["backbone"],
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
