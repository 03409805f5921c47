"""What the quality benchmark runs (shared by ``em3.bench.quality`` and ``em3.bench.quality_summary``): the
compared configurations, the benchmark's settings and one training run (a job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {  # model overrides of each compared configuration (DESIGN §3)
    "id_only": {"model.variant": "id_only"},
    "two_stage": {"model.variant": "two_stage"},
    "em3": {"model.variant": "em3"},
    "em3_mean_fusion": {"model.variant": "em3", "model.fusion": "mean"},
    "em3_frozen_history": {"model.variant": "em3", "model.history_mode": "frozen"},
    "em3_full_history": {"model.variant": "em3", "model.history_mode": "full"},
    "em3_no_cic": {"model.variant": "em3", "model.cic_weight": 0.0},
}
BASELINE = "two_stage"
BASELINE_LRS = (1e-3, 3e-3, 1e-2)


@dataclass(frozen=True)
class Settings:
    work_dir: Path
    backbones: tuple[str, ...] = ("din", "dcn")
    configs: tuple[str, ...] = tuple(CONFIGS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    trials: int = 6  # em3 settings tried in the search (the defaults included)
    baseline_lrs: tuple[float, ...] = tuple(BASELINE_LRS)
    workers: int = 2
    n_boot: int = 1000


@dataclass(frozen=True)
class Job:
    """One training run: a configuration on a backbone with a seed, plus the searched overrides."""

    stage: str  # "search" (validation only) or "final" (scored once on test)
    backbone: str
    config: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    trial: int = 0

    @property
    def name(self) -> str:
        suffix = f"trial{self.trial}" if self.stage == "search" else f"seed{self.seed}"
        return f"{self.stage}/{self.backbone}/{self.config}/{suffix}"
