"""Behaviour similarity of the frozen content itself, no model trained (issue 25): the reference that tells how much
of the look-alike structure co-engagement follows a trained content embedding keeps.

    .venv/bin/python bench/frozen_behaviour.py --work-dir DIR [--config configs/bench_quality.yaml]
        [--synthetic-impressions N]

Reads the data that `em3 bench quality` (or bench/validation_runs.py) prepared under the work folder and prints
DESIGN §2's behaviour similarity (held out, on validation and on test; and in-sample), with each item's neighbours
taken in the space of material similarity's raw content (each modality's pooled vector L2-normalised, concatenated).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from em3.bench.quality import benchmark_config
from em3.config import load_config
from em3.data.content_similarity import unit_content
from em3.data.loading import load_data
from em3.evaluation.similarity import behaviour_similarity
from em3.evaluation.stage import HELD_OUT, IN_SAMPLE, shared_inputs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, required=True, help="the benchmark's work folder (prepared data)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench_quality.yaml")
    parser.add_argument("--synthetic-impressions", type=int, default=0, metavar="N", help="the synthetic log's data")
    args = parser.parse_args()
    cfg = benchmark_config(load_config(args.config), args.work_dir, synthetic=args.synthetic_impressions > 0)
    data = load_data(cfg)
    k = cfg.evaluate.k_neighbours
    raw = np.asarray(unit_content(data.store)[np.arange(data.store.n_rows)], dtype=np.float32)  # (n_rows, D)
    references = {split: shared_inputs(data, cfg.evaluate, split).behaviour for split in ("valid", "test")}
    rows = [("valid", HELD_OUT), ("test", HELD_OUT), ("train", IN_SAMPLE)]  # in-sample: the same for both splits
    for split, name in rows:
        reference = references["valid" if split == "train" else split][name]
        value, _ = behaviour_similarity(raw, reference.interactions, reference.popular_items, k)
        print(f"{split:5s} {name:32s} {value:.4f}  ({len(reference.popular_items)} popular items, k={k})")


if __name__ == "__main__":
    main()
