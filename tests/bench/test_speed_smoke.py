"""`bench/speed.py --quick` runs end to end and writes the documented JSON with positive, finite measurements."""

import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from em3.profiling import PeakMemory

ROOT = Path(__file__).resolve().parents[2]
TRAIN_KEYS = {
    "history_length",
    "config",
    "unique_history_items",
    "samples_per_s",
    "samples_per_s_repeats",
    "speed_ratio",
    "batch_share",
    "peak_mb",
    "peak_ratio",
}
FEATURE_RATES = {"bare_items_per_s", "pipeline_items_per_s", "end_to_end_items_per_s", "encoder_load_s"}
OVERHEADS = {"pipeline_overhead", "end_to_end_overhead"}  # ours ÷ bare − 1: noise can make it negative


def positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_quick_run_writes_the_documented_keys_with_positive_finite_numbers(tmp_path):
    out = tmp_path / "speed.json"
    command = [sys.executable, "bench/speed.py", "--quick", "--threads", "1", "--out", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text())

    assert result.keys() == {"command", "seconds", "machine", "settings", "train", "features", "targets"}
    assert {"cpu", "logical_cpus", "torch_threads", "torch"} <= result["machine"].keys()
    assert {r["config"] for r in result["train"]} == {"two_stage", "em3_full", "em3_lora", "em3_frozen"}
    for record in result["train"]:
        assert record.keys() == TRAIN_KEYS
        numbers = [record[key] for key in TRAIN_KEYS - {"config", "batch_share", "samples_per_s_repeats"}]
        assert all(map(positive, numbers + record["samples_per_s_repeats"])), record
        assert 0 <= record["batch_share"] <= 1, record

    features = result["features"]
    assert features.keys() == {"items", "batch_size"} | FEATURE_RATES | OVERHEADS
    assert all(positive(features[key]) for key in FEATURE_RATES), features
    assert all(math.isfinite(features[key]) and features[key] > -1 for key in OVERHEADS), features

    assert result["targets"].keys() == {"speed_ratio", "lora_peak_ratio", "feature_overhead"}
    for target in result["targets"].values():
        assert target.keys() == {"value", "target", "met", "at"} and math.isfinite(target["value"])


def test_peak_memory_counts_what_a_block_allocates_not_what_was_held_before():
    held = torch.ones(25_000_000)  # 100 MB in use before the block
    with PeakMemory("cpu") as peak:
        block = torch.ones(12_500_000)  # 50 MB, freed inside the block
        del block
    del held
    assert 40e6 < peak.peak_bytes < 70e6, peak.peak_bytes
