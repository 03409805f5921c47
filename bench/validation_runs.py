"""One training run on the quality benchmark's data, scored on the validation split only (the test split is never
read): how model changes were chosen for issue 12 (docs/benchmarks.md, "Choosing on validation").

    .venv/bin/python bench/validation_runs.py NAME [--set key=value ...] [--config configs/bench_quality.yaml]
        [--work-dir DIR] [--synthetic-impressions N]

Trains the benchmark config (by default ``configs/bench_quality.yaml``: the H&M sample, DESIGN §4's split;
``configs/bench_extract.yaml``: the H&M extract) with lr 1e-3, 10 epochs, patience 3 and the given overrides, and
appends the run's validation curve, best epoch, stop reason, seconds, the finished model's validation AUC by the
modalities of the row's item, and the similarity metrics of DESIGN §2 (material similarity over the validation
split's cold items; behaviour similarity over the validation period's positives, and in-sample over training's) to
``bench/results/validation_runs.jsonl``.
A NAME already there is skipped, so a list of runs resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from em3.bench.quality import benchmark_config, prepare_data, with_overrides
from em3.config import load_config
from em3.data.loading import load_data
from em3.evaluation.modality import auc_by_modality, item_modalities
from em3.evaluation.stage import shared_inputs, similarities
from em3.train import train
from em3.train.trainer import predict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "validation_runs.jsonl"
PROTOCOL = {"train.lr": 1e-3, "train.epochs": 10, "train.patience": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the run's name in the results file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "configs" / "bench_quality.yaml",
        help="the benchmark config whose data and protocol the run uses",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="the quality benchmark's work folder, whose prepared data is reused (default: the config's output_dir)",
    )
    parser.add_argument(
        "--synthetic-impressions",
        type=int,
        default=0,
        metavar="N",
        help="train on the synthetic native log of N impressions that `em3 bench quality --synthetic-impressions N "
        "--work-dir DIR` wrote under the work folder (written there first if missing), not on ingest.source",
    )
    args = parser.parse_args()
    done = {json.loads(line)["name"] for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    if args.name in done:
        print(f"{args.name}: in {RESULTS} already")
        return
    overrides = {key: yaml.safe_load(value) for key, value in (pair.split("=", 1) for pair in args.set)}
    base = load_config(args.config)
    work_dir = args.work_dir or base.output_dir
    synthetic = args.synthetic_impressions
    cfg = with_overrides(benchmark_config(base, work_dir, synthetic=synthetic > 0), {**PROTOCOL, **overrides})
    cfg = cfg.model_copy(update={"name": args.name, "output_dir": work_dir / "validation_runs" / args.name})
    prepare_data(cfg, synthetic)
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_data(cfg)
    result = train(cfg, data, test=False)
    metrics = result.metrics
    similarity, _, _ = similarities(result.model, data.store, shared_inputs(data, cfg.evaluate, "valid"), cfg.evaluate)
    curve = [round(epoch["auc"], 4) for epoch in metrics["valid_history"]]
    valid = data.valid
    logits = predict(result.model, valid, data, cfg.evaluate.batch_size)
    by_modality = auc_by_modality(valid.label.numpy(), logits, item_modalities(data.store, valid.item.numpy()))
    record = {
        "name": args.name,
        "config": args.config.name,
        **({"synthetic_impressions": synthetic} if synthetic else {}),
        "overrides": overrides,
        "best_valid_auc": max(curve, default=None),
        "valid_auc": round(metrics["valid"]["auc"], 4),
        "valid_auc_by_modality": {name: round(part["auc"], 4) for name, part in by_modality.items()},
        "best_epoch": metrics["best_epoch"],
        "stopped_by": metrics["stopped_by"],
        "steps": metrics["steps"],
        "seconds": round(time.perf_counter() - started),
        "curve": curve,
        **{name: round(value, 4) for name, value in similarity.items()},
    }
    print(json.dumps(record))
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
