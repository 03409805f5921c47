"""The serving benchmark (issue 14): rows per second of ``em3 score`` against em3's own prediction loop
(``em3.train.trainer.predict``) over the same rows, measured in the same run.

Setup (not timed): the demo's raw synthetic data (``--users``, ``--items``, ``--purchases``) → ingest → validate →
features (the built-in encoders at 64 px) → train em3 on DIN for one epoch → log and register (SQLite under
``--work-dir``). The rows: every interaction of the tables (train, valid and test, in that order) repeated up to
``--rows``, written as a native impression log without labels (Parquet).

Timed, ``--repeats`` times each, alternating, the fastest kept:
- ``own_loop``: ``predict`` over a ``Split`` of exactly those rows, already encoded (histories, context) in memory;
- ``em3_score``: ``score_log`` as ``em3 score --model models:/em3@champion --input log.parquet --output
  scores.parquet`` runs it: model download from the registry, reading, checking and encoding the rows (histories
  included), scoring, writing scores, quarantine and manifest.
``ratio`` = em3_score seconds ÷ own_loop seconds (the target: at most 1.2). Prints and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from em3.config import parse_config
from em3.data.dataset import Split
from em3.data.loading import load_data
from em3.data.synthetic_hm import generate_raw_synthetic
from em3.features import run_features
from em3.ingest import run_ingest
from em3.profiling import machine_info
from em3.registry import log_run, register
from em3.serving.batch import score_log
from em3.train import train
from em3.train.trainer import predict
from em3.validation import run_validate
from em3.validation.contract import SPLITS, SplitRule, read_interactions

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def setup(work: Path, args: argparse.Namespace):
    values = {
        "name": "em3_din",
        "output_dir": str(work / "run"),
        "ingest": {"source": str(work / "raw")},
        "raw_synthetic": {
            "n_users": args.users,
            "n_items": args.items,
            "n_purchases": args.purchases,
            "image_size": 64,
        },
        "features": {"image_size": 64, "progress": False},
        "data": {
            "source": "tables",
            "tables_dir": str(work / "tables"),
            "store_dir": str(work / "store"),
            "validation_dir": str(work / "validation"),
        },
        "train": {"epochs": 1, "progress": False},
        "registry": {
            "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
            "artifact_location": str(work / "artifacts"),
            "min_auc": 0.0,
        },
        "score": {"progress": False, "batch_size": args.batch_size},
    }
    cfg = parse_config(values, "bench/score.py")
    generate_raw_synthetic(cfg.raw_synthetic, work / "raw")
    run_ingest(cfg.ingest, cfg.data.tables_dir)
    run_validate(cfg.validation, cfg.data.tables_dir, cfg.data.validation_dir)
    run_features(
        cfg.features, pd.read_parquet(cfg.data.tables_dir / "items.parquet"), cfg.data.tables_dir, cfg.data.store_dir
    )
    data = load_data(cfg)
    model = train(cfg, data).model.eval()
    register(cfg, log_run(cfg, cfg.output_dir, data_hash="bench"))
    return cfg, data, model


def same_rows(cfg, data, n_rows: int) -> tuple[pd.DataFrame, Split]:
    """The interactions in split order, repeated to ``n_rows``: as a native log and as em3's encoded Split."""
    table = read_interactions(cfg.data.tables_dir).to_pandas()
    split = SplitRule.of_tables(cfg.data.tables_dir).codes(table["ts"].to_numpy())
    table = table.iloc[np.argsort(split, kind="stable")].reset_index(drop=True)
    repeat = np.resize(np.arange(len(table)), n_rows)
    log = pd.DataFrame(
        {
            "user_id": table["user_id"],
            "item_id": table["item_id"],
            "ts": pd.to_datetime(table["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "sales_channel_id": table["sales_channel_id"],
        }
    ).iloc[repeat]
    encoded = [getattr(data, name) for name in SPLITS]
    split = Split(
        *(
            torch.cat([getattr(part, field) for part in encoded])[torch.from_numpy(repeat)]
            for field in ("user", "item", "context", "history", "label", "cold", "numeric")
        )
    )
    return log.reset_index(drop=True), split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--purchases", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per forward pass, both loops")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_score"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/score.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    cfg, data, model = setup(args.work_dir, args)
    log, split = same_rows(cfg, data, args.rows)
    log_path = args.work_dir / "log.parquet"
    log.to_parquet(log_path, index=False)

    timings: dict[str, list[float]] = {"own_loop": [], "em3_score": []}
    for _ in range(args.repeats):
        tick = time.perf_counter()
        own = predict(model, split, data, args.batch_size)
        timings["own_loop"].append(time.perf_counter() - tick)
        tick = time.perf_counter()
        manifest = score_log(cfg, "models:/em3@champion", str(log_path), str(args.work_dir / "scores.parquet"))
        timings["em3_score"].append(time.perf_counter() - tick)
    scores = pd.read_parquet(args.work_dir / "scores.parquet")["score"].to_numpy()
    gap = float(np.abs(scores - 1 / (1 + np.exp(-own.astype(np.float64)))).max())
    best = {name: min(values) for name, values in timings.items()}
    result = {
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "machine": machine_info(),
        "rows": args.rows,
        "rows_scored": manifest["output"]["rows"],
        "seconds": {name: [round(v, 3) for v in values] for name, values in timings.items()},
        "rows_per_s": {name: round(args.rows / seconds) for name, seconds in best.items()},
        "ratio": round(best["em3_score"] / best["own_loop"], 3),
        "max_score_difference": gap,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("rows", "rows_per_s", "ratio", "max_score_difference")}, indent=2))


if __name__ == "__main__":
    main()
