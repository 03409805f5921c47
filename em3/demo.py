"""The out-of-the-box job: synthetic data → train ``id_only``, ``two_stage`` and ``em3`` → comparison table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from em3.config import Config
from em3.data.loading import load_data
from em3.report import comparison_rows, markdown_table, read_metrics
from em3.train import train

VARIANTS = ("id_only", "two_stage", "em3")


def run_demo(base: Config, backbones: Sequence[str], output_dir: Path) -> str:
    """Train every variant on every backbone on the same data and split; return the table (also saved)."""
    data = load_data(base)
    runs = []
    for backbone in backbones:
        for variant in VARIANTS:
            name = f"{variant}_{backbone}"
            cfg = base.model_copy(
                update={
                    "name": name,
                    "output_dir": output_dir / name,
                    "model": base.model.model_copy(update={"variant": variant, "backbone": backbone}),
                }
            )
            train(cfg, data)
            runs.append(cfg.output_dir / "metrics" / "train.json")
    table = markdown_table(comparison_rows(read_metrics(runs)))  # the numbers `em3 train` wrote
    (output_dir / "comparison.md").write_text(table + "\n")
    return table
