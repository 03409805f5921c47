"""bench/lead_vs_size.py: em3's differences against both baselines per log size, turned the right way round."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("lead_vs_size", ROOT / "bench" / "lead_vs_size.py")
lead = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lead)


def summary(impressions: int, em3: tuple, mlp_minus_em3: tuple | None, two_stage_auc: float) -> dict:
    """A quality benchmark's JSON, as much of it as the script reads: (diff, low, high) intervals."""
    configs = {
        "two_stage": {"mean": {"auc": two_stage_auc}},
        "em3": {"auc_bootstrap": dict(zip(("diff", "low", "high"), em3, strict=True))},
    }
    if mlp_minus_em3 is not None:
        configs["two_stage_mlp"] = {
            "auc_vs_em3_bootstrap": dict(zip(("diff", "low", "high"), mlp_minus_em3, strict=True))
        }
    return {"settings": {"synthetic_impressions": impressions}, "results": {"din": configs}}


def test_rows_go_by_size_with_em3_minus_each_baseline_and_the_papers_gain(tmp_path):
    big = summary(1_000_000, (0.010, 0.006, 0.014), (-0.004, -0.007, -0.001), 0.70)
    small = summary(100_000, (0.002, -0.003, 0.007), None, 0.60)
    rows = lead.lead_rows([big, small])
    assert [(r["impressions"], r["baseline"]) for r in rows] == [
        (100_000, "two_stage"),
        (1_000_000, "two_stage"),
        (1_000_000, "two_stage_mlp"),
    ]
    mlp = rows[2]
    assert (mlp["diff"], mlp["low"], mlp["high"]) == (0.004, 0.001, 0.007), "two_stage_mlp − em3, turned round"
    assert rows[0]["paper"] == pytest.approx(0.00256 * 0.60) and rows[1]["paper"] == pytest.approx(0.00256 * 0.70)
    assert "| 1,000,000 | two_stage_mlp | +0.0040 [+0.0010, +0.0070] | +0.0018 |" in lead.lead_table(rows)

    paths = []
    for name, result in (("big", big), ("small", small)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(result))
    lead.main([*map(str, paths), "--out", str(tmp_path / "plots" / "lead.png")])
    assert (tmp_path / "plots" / "lead.png").read_bytes()[:4] == b"\x89PNG"


def test_a_result_that_is_not_a_synthetic_log_benchmark_is_refused():
    hm = summary(0, (0.0, -0.01, 0.01), None, 0.6)
    with pytest.raises(ValueError, match="want a synthetic-log benchmark with em3 and two_stage on din"):
        lead.lead_rows([hm])
