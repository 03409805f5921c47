"""bench/step_profile.py runs both configurations and accounts for the whole step by its parts."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_profile_writes_every_part_for_both_configurations(tmp_path):
    out = tmp_path / "profile.json"
    command = [
        sys.executable,
        "bench/step_profile.py",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--items",
        "500",
        "--batch-size",
        "16",
        "--length",
        "5",
        "--out",
        str(out),
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("two_stage", "em3"):
        ms = result["configs"][name]["ms"]
        assert set(ms) == {
            "batch",
            "target content",
            "history content",
            "backbone",
            "forward rest",
            "backward",
            "optimiser",
        }
        assert all(value >= 0 for value in ms.values()) and ms["backward"] > 0 and ms["backbone"] > 0
        assert abs(sum(ms.values()) - result["configs"][name]["ms_per_step"]) < 0.1  # rounding of 7 parts
    assert result["ratios"]["step"] > 0 and "| step |" in run.stdout
