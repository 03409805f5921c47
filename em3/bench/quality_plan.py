"""What the quality benchmark runs (shared by ``em3.bench.quality`` and ``em3.bench.quality_summary``): the
compared configurations, the benchmark's settings, one training run (a job) and the command line's options (light
to import: ``em3 --help`` builds them)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from em3.config import COENGAGEMENT_ALONE_WEIGHT, EM3_OBJECTIVE_WEIGHTS, ConfigError

CONFIGS: dict[str, dict[str, Any]] = {  # model overrides of each compared configuration (DESIGN §3)
    "id_only": {"model.variant": "id_only"},
    "two_stage": {"model.variant": "two_stage"},
    "two_stage_mlp": {"model.variant": "two_stage", "model.pooled_projection": "mlp"},
    "em3": {"model.variant": "em3"},
    "em3_mean_fusion": {"model.variant": "em3", "model.fusion": "mean"},
    "em3_frozen_history": {"model.variant": "em3", "model.history_mode": "frozen"},
    "em3_full_history": {"model.variant": "em3", "model.history_mode": "full"},
    "em3_no_cic": {"model.variant": "em3", "model.cic_weight": 0.0},
    # em3 plus co-engagement at the weight validation chose for it alone: em3's default leaves it out since
    # neighbourhood keeping (so "em3 without co-engagement" is em3 itself); this pair tests that choice
    "em3_coengagement": {"model.variant": "em3", "model.coengagement_weight": COENGAGEMENT_ALONE_WEIGHT},
    "em3_no_neighbourhood": {"model.variant": "em3", "model.neighbourhood_weight": 0.0},
    "em3_fine_tokens": {"model.variant": "em3", "model.content_tokens": "fine"},
    "em3_summary_tokens": {"model.variant": "em3", "model.content_tokens": "summary"},
    # two_stage with em3's objectives beyond the paper, at em3's weights (co-engagement, off in em3 since
    # neighbourhood keeping, at the weight validation chose for it alone): which of em3's gains they alone give
    "two_stage_coengagement": {"model.variant": "two_stage", "model.coengagement_weight": COENGAGEMENT_ALONE_WEIGHT},
    "two_stage_neighbourhood": {
        "model.variant": "two_stage",
        "model.neighbourhood_weight": EM3_OBJECTIVE_WEIGHTS["neighbourhood_weight"],
    },
}
BASELINE = "two_stage"
LR_GRID = (3e-4, 1e-3, 3e-3)  # searched for every configuration on every backbone alike (DESIGN §3)


@dataclass(frozen=True)
class Settings:
    work_dir: Path
    backbones: tuple[str, ...] = ("din", "dcn")
    configs: tuple[str, ...] = tuple(CONFIGS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    search_seeds: tuple[int, ...] = (0,)  # each grid point trained on these seeds; the best mean valid AUC wins
    lr_grid: tuple[float, ...] = LR_GRID
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # more searched settings: (dotted key, values) pairs
    workers: int = 2
    n_boot: int = 1000
    synthetic_impressions: int = 0  # > 0: the data is the synthetic native log of this many impressions
    chosen_from: Path | None = None  # an earlier benchmark's JSON whose search chose the settings: no search

    def __post_init__(self) -> None:
        if not self.search_seeds:
            raise ConfigError("--search-seeds must be at least 1 (the search needs a seed to train on)")
        if self.synthetic_impressions < 0:
            raise ConfigError(
                f"--synthetic-impressions must be a positive count (0: the config's own data), "
                f"got {self.synthetic_impressions}"
            )


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
        if self.stage == "search" and self.seed:
            suffix += f"-seed{self.seed}"
        return f"{self.stage}/{self.backbone}/{self.config}/{suffix}"


def grid_entry(text: str) -> tuple[str, tuple[Any, ...]]:
    """``KEY=V1,V2`` → (key, values), each value read as YAML (numbers, booleans, strings)."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"--grid takes KEY=V1,V2,... (got {text!r})")
    return key, tuple(yaml.safe_load(value) for value in values.split(","))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/bench_quality"),
        help="data, runs and per-run results (an interrupted benchmark resumes from here)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/quality.json"), help="the results (JSON)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of test AUC over seeds (default: next to --out)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per backbone and configuration")
    parser.add_argument("--backbones", nargs="+", default=["din", "dcn"], choices=["din", "dcn"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--lr-grid",
        type=float,
        nargs="+",
        default=list(LR_GRID),
        help="learning rates searched on validation, alike for every configuration and backbone",
    )
    parser.add_argument(
        "--grid",
        nargs="+",
        default=[],
        type=grid_entry,
        metavar="KEY=V1,V2",
        help="another setting searched alike for every configuration and backbone, crossed with the "
        "learning rates (e.g. model.modality_dropout=0,0.3)",
    )
    parser.add_argument(
        "--search-seeds",
        type=int,
        default=1,
        metavar="N",
        help="train every grid point on seeds 0..N-1 and keep the point of the best mean validation AUC (1: seed 0 "
        "alone; the final runs of searched seeds reuse their trial, so N costs N x (grid points - 1) more runs)",
    )
    parser.add_argument("--workers", type=int, default=2, help="training processes at once (one thread each)")
    parser.add_argument("--n-boot", type=int, default=1000, help="user-bootstrap replicates")
    parser.add_argument(
        "--synthetic-impressions",
        type=int,
        default=0,
        metavar="N",
        help="benchmark on the synthetic native log of N impressions (the config's raw_synthetic, "
        "written under --work-dir) instead of the config's ingest.source",
    )
    parser.add_argument(
        "--chosen-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="no search: each backbone and configuration trains with the settings an earlier "
        "benchmark's search chose (its JSON's search.chosen), e.g. the 300 k log's at other "
        "log sizes",
    )
    parser.add_argument(
        "--quick", action="store_true", help="seconds-long smoke run on tiny synthetic data (2 seeds, din, no search)"
    )
