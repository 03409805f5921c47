"""The out-of-the-box job: synthetic raw data → the whole Kubeflow pipeline on this machine (kfp.local) → the
summary (test metrics per model, the gate's decision, the registered version, the MLflow UI command).

The demo's sizes keep it to a few minutes on 2 CPU cores; every key can still be overridden (``--set``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from em3.config import Config, parse_config, set_dotted
from em3.workflow import VARIANTS
from pipelines.em3_run import run_local, summary_table

DEMO: dict[str, Any] = {
    "raw_synthetic": {"n_users": 300, "n_items": 400, "n_purchases": 6000, "image_size": 96},
    "features": {"image_size": 96, "progress": False},
    "train": {"epochs": 2, "batch_size": 256, "progress": False},
}


def demo_config(output_dir: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """The demo's config: DEMO sizes, MLflow on SQLite under ``output_dir``, then dotted ``overrides``."""
    values = copy.deepcopy(DEMO)
    values["registry"] = {
        "tracking_uri": f"sqlite:///{output_dir / 'mlflow.db'}",
        "artifact_location": str((output_dir / "mlartifacts").resolve()),
    }
    for dotted, value in (overrides or {}).items():
        set_dotted(values, dotted, value)
    return parse_config(values, "em3 demo")


def run_demo(cfg: Config, output_dir: Path, variants: Sequence[str] = VARIANTS) -> str:
    """Run the pipeline on ``raw_synthetic`` data with outputs under ``output_dir``; return the summary (also saved
    to ``output_dir/summary.md``)."""
    table = summary_table(run_local(cfg, output_dir / "pipeline", variants, synthetic=True))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "summary.md").write_text(table + "\n")
    return table
