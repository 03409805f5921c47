"""One training run on the quality benchmark's data, scored on the validation split only (the test split is never
read): how model changes were chosen for issue 12 (docs/benchmarks.md, "Choosing on validation").

    .venv/bin/python bench/validation_runs.py NAME [--set key=value ...] [--work-dir runs/bench_quality]

Trains ``configs/bench_quality.yaml`` (the H&M sample, DESIGN §4's split) with lr 1e-3, 10 epochs, patience 3 and
the given overrides, and appends the run's validation curve, best epoch, stop reason, seconds and the similarity
metrics of DESIGN §2 (material similarity over the validation split's cold items, behaviour similarity over the
training interactions) to ``bench/results/validation_runs.jsonl``. A NAME already there is skipped, so a list of
runs resumes.
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
from em3.evaluation.stage import shared_inputs, similarities
from em3.train import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "validation_runs.jsonl"
PROTOCOL = {"train.lr": 1e-3, "train.epochs": 10, "train.patience": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the run's name in the results file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_quality",
                        help="the quality benchmark's work folder (its prepared data is reused)")  # fmt: skip
    args = parser.parse_args()
    done = {json.loads(line)["name"] for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    if args.name in done:
        print(f"{args.name}: in {RESULTS} already")
        return
    overrides = {key: yaml.safe_load(value) for key, value in (pair.split("=", 1) for pair in args.set)}
    cfg = with_overrides(benchmark_config(load_config(ROOT / "configs" / "bench_quality.yaml"), args.work_dir),
                         {**PROTOCOL, **overrides})  # fmt: skip
    cfg = cfg.model_copy(update={"name": args.name, "output_dir": args.work_dir / "validation_runs" / args.name})
    prepare_data(cfg)
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_data(cfg)
    result = train(cfg, data, test=False)
    metrics = result.metrics
    similarity, _, _ = similarities(result.model, data.store, shared_inputs(data, cfg.evaluate, "valid"), cfg.evaluate)
    curve = [round(epoch["auc"], 4) for epoch in metrics["valid_history"]]
    record = {"name": args.name, "overrides": overrides, "best_valid_auc": max(curve, default=None),
              "best_epoch": metrics["best_epoch"], "stopped_by": metrics["stopped_by"], "steps": metrics["steps"],
              "seconds": round(time.perf_counter() - started), "curve": curve,
              **{name: round(value, 4) for name, value in similarity.items()}}  # fmt: skip
    print(json.dumps(record))
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
