"""The cost benchmark (issue 5, item 3): what EM3 costs against ``two_stage``, and what the feature stage adds.

1. Training: samples/s and peak step memory of ``two_stage`` and ``em3`` with history modes full, lora and frozen,
   at each history length, on batches whose histories are full (every slot a real item, drawn uniformly from a
   synthetic catalogue). Samples/s: one process, configurations interleaved (A, B, C, D, A, B, …), each measurement
   at least ``--min-seconds`` of training steps as ``em3.train.trainer`` runs them (batch building included); the
   median over ``--repeats`` rounds, and the ratio to ``two_stage`` as the median of the per-round ratios, after a
   warm-up pass over the batches (em3's read-through cache then holds the history items; what re-encoding them
   every ``model.content_cache_every`` steps costs is bench/catalogue_scale.py's measure). Peak
   memory: each configuration in a fresh process, the growth during one training step after a warm-up step
   (``em3.profiling.PeakMemory``: RSS high-water mark on CPU, ``torch.cuda.max_memory_allocated`` on CUDA).
   ``--token-widths encoders`` gives the catalogue the widths the default encoders store (9 image tokens of 1,280
   numbers, 32 text tokens of 384) instead of small ones: what a history item costs each model depends on them
   (two_stage projects a 1,664-number pooled vector per history item, em3 reads a 256-number cached fusion).
2. Features (bench/feature_speed.py): items/s of ``run_features`` (hash, decode, encode, write the store) against
   a bare loop of the same encoders' forward passes over the same items, decoded and preprocessed beforehand.

Writes JSON (``--out``) with the keys ``command``, ``seconds``, ``machine``, ``settings``, ``train`` (one record per
history length and configuration: ``history_length``, ``config``, ``unique_history_items``, ``samples_per_s``,
``samples_per_s_repeats``, ``speed_ratio``, ``batch_share``, ``peak_mb``, ``peak_ratio``), ``features``
(``items``, ``batch_size``, ``encoder_load_s``, ``bare_items_per_s``, ``pipeline_items_per_s``,
``end_to_end_items_per_s``, ``pipeline_overhead``, ``end_to_end_overhead``) and ``targets`` (``speed_ratio``,
``lora_peak_ratio``, ``feature_overhead``: each ``value``, ``target``, ``met``, ``at``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from feature_speed import bench_features  # bench/ is the script's folder

from em3.config import DataConfig, ModelConfig, SyntheticConfig, TrainConfig
from em3.data.dataset import Split, make_batch
from em3.data.synthetic_tokens import synthetic_store
from em3.data.token_store import TokenStore
from em3.models import ModelShapes, Ranker
from em3.profiling import PeakMemory, machine_info
from em3.train.optim import make_optimizer
from em3.train.trainer import optimisation_step

CONFIGS: dict[str, dict[str, str]] = {
    "two_stage": {"variant": "two_stage"},
    "em3_full": {"variant": "em3", "history_mode": "full"},
    "em3_lora": {"variant": "em3", "history_mode": "lora"},
    "em3_frozen": {"variant": "em3", "history_mode": "frozen"},
}
BASELINE, FULL, SHIPPED = "two_stage", "em3_full", "em3_lora"  # em3 trains with the lora history branch by default
PRESETS = {  # option: (full run, --quick, help)
    "lengths": ([20, 50, 100, 200], [20], "history lengths (data.max_history); every history slot holds an item"),
    "items": (50_000, 1_000, "catalogue size; history items are drawn uniformly from it"),
    "batch_size": (256, 32, "training rows per step"),
    "repeats": (3, 1, "interleaved measurement rounds; medians are reported"),
    "min_seconds": (1.0, 0.2, "least training time per configuration and round"),
    "feature_items": (128, 16, "items through the feature stage"),
}
TARGETS = {  # em3 costs at most 1.3× two_stage a sample (issue 20; issue 5 asked 1.5×)
    "speed_ratio": 1 / 1.3,
    "lora_peak_ratio": 0.5,
    "feature_overhead": 0.2,
}
N_USERS, N_BATCHES, CLICK_RATE = 1000, 4, 0.3
TOKEN_WIDTHS = {  # --token-widths: the synthetic catalogue's tokens
    "small": {},  # SyntheticConfig's: 9 image tokens of 48 numbers, 12 text tokens of 32 (cheap to generate)
    # what the default encoders and features settings store (DESIGN §5): a 3 x 3 grid of EfficientNet-lite0's
    # 1,280-d map, 32 MiniLM tokens of 384; two_stage's pooled vector is then 1,664 numbers an item
    "encoders": {"image_tokens": 9, "image_dim": 1280, "text_tokens": 32, "text_dim": 384},
}


@dataclass(frozen=True)
class Settings:
    """What a training measurement depends on (sent to the memory worker processes as is)."""

    items: int
    batch_size: int
    backbone: str
    device: str
    threads: int
    seed: int = 0
    token_widths: str = "small"


# ---------------------------------------------------------------------------------------------------- training


def catalogue(settings: Settings) -> TokenStore:
    """The synthetic token store (image and text tokens per item), as the training path reads it."""
    cfg = DataConfig(synthetic=SyntheticConfig(n_items=settings.items, **TOKEN_WIDTHS[settings.token_widths]))
    return synthetic_store(cfg, np.random.default_rng(settings.seed))[0]


def full_history_rows(settings: Settings, length: int, n_rows: int) -> Split:
    """Impressions whose histories hold ``length`` real items each (no padding), drawn uniformly from the catalogue."""
    g = torch.Generator().manual_seed(settings.seed)
    return Split(
        user=torch.randint(1, N_USERS, (n_rows,), generator=g),
        item=torch.randint(1, settings.items + 1, (n_rows,), generator=g),
        context=torch.randint(1, 3, (n_rows, 1), generator=g),
        history=torch.randint(1, settings.items + 1, (n_rows, length), generator=g),
        label=(torch.rand(n_rows, generator=g) < CLICK_RATE).float(),
        cold=torch.zeros(n_rows, dtype=torch.bool),
    )


class Trainee:
    """One configuration in training on a shared workload; ``step`` is one step of ``em3.train.trainer``'s loop."""

    def __init__(self, name: str, settings: Settings, store: TokenStore, rows: Split):
        torch.manual_seed(settings.seed)
        self.device = torch.device(settings.device)
        self.train_cfg = TrainConfig(batch_size=settings.batch_size, device=settings.device)
        shapes = ModelShapes(N_USERS, store.n_rows, (3,), store.image_dim, store.text_dim, store.pooled_dim)
        self.model = Ranker(ModelConfig(backbone=settings.backbone, **CONFIGS[name]), shapes).to(self.device).train()
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        self.store, self.rows = store, rows
        self.batches = torch.arange(len(rows)).split(settings.batch_size)
        self.cursor = 0

    def step(self) -> float:
        """One training step on the next batch of the rotation; returns the seconds spent building the batch."""
        started = time.perf_counter()
        index = self.batches[self.cursor % len(self.batches)]
        if self.model.content_cache_every and self.cursor % self.model.content_cache_every == 0:
            self.model.refresh_content_cache(self.store)  # counted in the batch-building share
        self.cursor += 1
        batch = make_batch(self.rows, index, self.store, self.model.content_inputs).to(self.device)
        built = time.perf_counter()
        losses = optimisation_step(self.model, self.optimizer, batch, self.train_cfg, self.device)
        if not torch.isfinite(losses["loss"]):
            raise FloatingPointError(f"loss is {losses['loss'].item()}")
        return built - started

    def timed(self, min_seconds: float) -> tuple[float, float]:
        """Train for at least ``min_seconds`` (one step at least): (samples/s, share of the time building batches)."""
        steps, batch_seconds, started = 0, 0.0, time.perf_counter()
        while steps == 0 or time.perf_counter() - started < min_seconds:
            batch_seconds += self.step()
            steps += 1
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - started
        return steps * len(self.batches[0]) / elapsed, batch_seconds / elapsed


def step_peak_mb(settings: Settings, name: str, length: int) -> float:
    """Peak memory growth (MiB) of one training step after a warm-up step; run it in a fresh process."""
    torch.set_num_threads(settings.threads)
    rows = full_history_rows(settings, length, N_BATCHES * settings.batch_size)
    trainee = Trainee(name, settings, catalogue(settings), rows)
    trainee.step()
    with PeakMemory(trainee.device) as peak:
        trainee.step()
    return peak.peak_bytes / 2**20


def peaks_in_fresh_processes(settings: Settings, length: int) -> dict[str, float]:
    """``step_peak_mb`` of every configuration, each in a new process: a fork of a server that imported this script
    (so torch and em3) and peft once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "peft"])
    with ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        return {name: pool.submit(step_peak_mb, settings, name, length).result() for name in CONFIGS}


def bench_training(settings: Settings, lengths: Sequence[int], repeats: int, min_seconds: float) -> list[dict]:
    """Per history length: memory of each configuration in fresh processes, then interleaved speed rounds."""
    store = catalogue(settings)
    records = []
    for length in lengths:
        peaks = peaks_in_fresh_processes(settings, length)
        rows = full_history_rows(settings, length, N_BATCHES * settings.batch_size)
        trainees = {name: Trainee(name, settings, store, rows) for name in CONFIGS}
        for trainee in trainees.values():  # warm-up: one pass over the rotation, so that em3's read-through cache
            for _ in range(N_BATCHES):  # holds every history item, as it does between its refreshes in training
                trainee.step()
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
        for _ in range(repeats):
            for name, trainee in trainees.items():
                runs[name].append(trainee.timed(min_seconds))
        unique = statistics.mean(len(torch.unique(rows.history[index])) for index in trainees[BASELINE].batches)
        for name in CONFIGS:
            speeds = [speed for speed, _ in runs[name]]
            paired = [speed / base for speed, (base, _) in zip(speeds, runs[BASELINE], strict=True)]
            records.append(
                {
                    "history_length": length,
                    "config": name,
                    "unique_history_items": round(unique, 1),
                    "samples_per_s": round(statistics.median(speeds), 2),
                    "samples_per_s_repeats": [round(speed, 2) for speed in speeds],
                    "speed_ratio": round(statistics.median(paired), 4),
                    "batch_share": round(statistics.median(share for _, share in runs[name]), 3),
                    "peak_mb": round(peaks[name], 1),
                    "peak_ratio": round(peaks[name] / peaks[FULL], 4),
                }
            )
            print(
                f"  L={length:<4} {name:<11} {records[-1]['samples_per_s']:>9.1f} samples/s  {peaks[name]:>8.1f} MiB",
                flush=True,
            )
        del trainees
    return records


# ---------------------------------------------------------------------------------------------------- report


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, columns padded to their widest cell."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |" for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def targets(train: list[dict], features: dict) -> dict:
    """Each target: its value, the bound, whether it is met, and where it was read."""
    shipped = min((r for r in train if r["config"] == SHIPPED), key=lambda r: r["speed_ratio"])
    longest = max(r["history_length"] for r in train)
    lora = next(r for r in train if r["config"] == SHIPPED and r["history_length"] == longest)
    return {
        "speed_ratio": {
            "value": shipped["speed_ratio"],
            "target": round(TARGETS["speed_ratio"], 4),
            "met": shipped["speed_ratio"] >= TARGETS["speed_ratio"],
            "at": f"{SHIPPED} ÷ {BASELINE} samples/s, worst length L={shipped['history_length']}",
        },
        "lora_peak_ratio": {
            "value": lora["peak_ratio"],
            "target": TARGETS["lora_peak_ratio"],
            "met": lora["peak_ratio"] <= TARGETS["lora_peak_ratio"],
            "at": f"{SHIPPED} ÷ {FULL} step peak memory, L={longest}",
        },
        "feature_overhead": {
            "value": features["pipeline_overhead"],
            "target": TARGETS["feature_overhead"],
            "met": features["pipeline_overhead"] <= TARGETS["feature_overhead"],
            "at": "run_features per-item stages ÷ bare encoder loop − 1",
        },
    }


def print_report(result: dict) -> None:
    """The command, the machine and three Markdown tables: training, feature stage, targets."""
    train, features = result["train"], result["features"]
    print(f"\n{result['command']}\n{json.dumps(result['machine'])}\n")
    print(
        markdown_table(
            ["L", "config", "unique hist. items", "samples/s", "÷ two_stage", "batch share", "peak MiB", "÷ em3_full"],
            [
                [
                    r["history_length"],
                    r["config"],
                    r["unique_history_items"],
                    r["samples_per_s"],
                    r["speed_ratio"],
                    r["batch_share"],
                    r["peak_mb"],
                    r["peak_ratio"],
                ]
                for r in train
            ],
        )
    )
    print()
    print(
        markdown_table(
            [
                "items",
                "batch",
                "bare items/s",
                "pipeline items/s",
                "end-to-end items/s",
                "pipeline overhead",
                "end-to-end overhead",
                "encoder load s",
            ],
            [
                [
                    features[key]
                    for key in (
                        "items",
                        "batch_size",
                        "bare_items_per_s",
                        "pipeline_items_per_s",
                        "end_to_end_items_per_s",
                        "pipeline_overhead",
                        "end_to_end_overhead",
                        "encoder_load_s",
                    )
                ]
            ],
        )
    )
    print()
    print(
        markdown_table(
            ["target", "value", "bound", "met", "read at"],
            [[name, t["value"], t["target"], t["met"], t["at"]] for name, t in result["targets"].items()],
        )
    )
    print(f"\n{result['seconds']:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Cost benchmark: em3 vs two_stage training speed and peak memory by history length and history "
        "mode, and the feature stage against a bare encoder loop. Prints Markdown tables and writes JSON.",
        epilog="example: .venv/bin/python bench/speed.py --lengths 50 200 --repeats 5 --out /tmp/speed.json",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run (one length, few steps), for smoke tests")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda: bf16 autocast and torch.cuda.max_memory_allocated (default: cpu)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results/speed.json"),
        help="the JSON written (default: bench/results/speed.json)",
    )
    parser.add_argument("--backbone", choices=["din", "dcn"], default="din", help="ranking backbone (default: din)")
    parser.add_argument(
        "--token-widths",
        choices=list(TOKEN_WIDTHS),
        default="small",
        help="the synthetic catalogue's token widths: small (48-d image, 32-d text tokens; default) or encoders "
        "(9 x 1,280 and 32 x 384, what the default encoders store; slower to generate)",
    )
    parser.add_argument(
        "--images",
        type=Path,
        help="feature items' photos: the first JPEGs found here (default: rendered 360×540 photos)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help=f"torch intra-op threads (default: {torch.get_num_threads()})",
    )
    for name, (full, quick, text) in PRESETS.items():
        kind = type(full[0]) if isinstance(full, list) else type(full)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            nargs="+" if isinstance(full, list) else None,
            help=f"{text} (default: {full}; --quick: {quick})",
        )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    for name, (full, quick, _) in PRESETS.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    settings = Settings(
        args.items, args.batch_size, args.backbone, str(device), args.threads, token_widths=args.token_widths
    )
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    machine = machine_info(device)  # before the run: the load average says how busy the machine was
    print(command, flush=True)
    print(f"training: lengths {args.lengths}, {args.items} items, batch {args.batch_size}", flush=True)
    train = bench_training(settings, args.lengths, args.repeats, args.min_seconds)
    print(f"features: {args.feature_items} items", flush=True)
    features = bench_features(args.feature_items, args.images, str(device), args.repeats)
    result = {
        "command": command,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine,
        "settings": {
            **asdict(settings),
            "lengths": args.lengths,
            "repeats": args.repeats,
            "min_seconds": args.min_seconds,
            "feature_items": args.feature_items,
            "images": str(args.images) if args.images else "rendered",
        },
        "train": train,
        "features": features,
        "targets": targets(train, features),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)


if __name__ == "__main__":
    main()
