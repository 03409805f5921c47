"""The quality benchmark's targets (issue 12's must-shows) from a results dict: each rule met or missed."""

from pathlib import Path

import pytest

from em3.bench.quality_summary import SIMILARITIES, interval_verdict, tables, targets
from em3.config import BenchConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SAMPLE = load_config(CONFIGS / "bench_quality.yaml").bench  # DESIGN §4's levels
SYNTHETIC = load_config(CONFIGS / "bench_synthetic.yaml").bench


def results(two_stage: float, em3: float, low: float) -> dict:
    boot = {
        "diff": em3 - two_stage,
        "low": low,
        "high": em3 - two_stage + 0.01,
        "relative": em3 / two_stage - 1,
        "relative_low": low / two_stage,
        "relative_high": 0.02,
    }
    similarity = {"diff": 0.06, "low": 0.01, "high": 0.1}
    similarity_boot = {"diff": 0.002, "low": 0.001, "high": 0.004, "relative": 0.06}
    similarity_boot |= {"relative_low": 0.02, "relative_high": 0.09}
    return {
        "din": {
            "two_stage": {"mean": {"auc": two_stage}},
            "em3": {
                "mean": {"auc": em3},
                "auc_bootstrap": boot,
                "relative_to_two_stage": {"material_similarity": similarity, "behaviour_similarity": similarity},
                "similarity_bootstrap": dict.fromkeys(SIMILARITIES, similarity_boot),
            },
        }
    }


def met(rows: list[dict]) -> dict[str, bool]:
    return {row["name"]: row["met"] for row in rows}


@pytest.mark.parametrize(
    "two_stage,em3,low,expected",
    [
        (0.590, 0.5920, -0.004, {"relative": True, "low": True, "two_stage": True, "em3": True}),
        (0.590, 0.5910, -0.004, {"relative": False, "low": True, "two_stage": True, "em3": True}),  # +0.17 %
        (0.590, 0.5920, -0.006, {"relative": True, "low": False, "two_stage": True, "em3": True}),
        (0.575, 0.5880, +0.001, {"relative": True, "low": True, "two_stage": False, "em3": False}),
    ],
)
def test_sample_targets_follow_the_issue(two_stage, em3, low, expected):
    rows = met(targets(results(two_stage, em3, low), SAMPLE))
    assert rows["em3 AUC vs two_stage (relative)"] is expected["relative"]
    assert rows["em3 − two_stage AUC: lower end of the 95 % interval (absolute)"] is expected["low"]
    assert rows["two_stage mean test AUC"] is expected["two_stage"]
    assert rows["em3 mean test AUC"] is expected["em3"]


def test_synthetic_targets_want_the_whole_interval_above_zero_and_no_sample_levels():
    rows = met(targets(results(0.70, 0.72, -0.001), SYNTHETIC))
    assert rows["em3 − two_stage AUC: lower end of the 95 % interval (absolute)"] is False
    assert "em3 mean test AUC" not in rows
    assert met(targets(results(0.70, 0.72, +0.002), SYNTHETIC))[
        "em3 − two_stage AUC: lower end of the 95 % interval (absolute)"
    ]


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (-0.0150, -0.0017, "earns its place"),  # the whole interval below 0
        (-0.0076, +0.0062, "within noise"),  # a negative point estimate is not enough
        (-0.0100, 0.0, "within noise"),  # touching 0 is not below it
        (+0.0010, +0.0090, "costs"),
    ],
)
def test_an_ablation_earns_its_place_only_when_its_whole_interval_says_so(low, high, verdict):
    assert interval_verdict(low, high) == verdict
    boot = {"diff": (low + high) / 2, "low": low, "high": high}
    summary = results(0.59, 0.60, -0.004)
    summary["din"]["em3_no_cic"] = {"auc_vs_em3_bootstrap": boot}
    (row,) = [r for r in targets(summary, SAMPLE) if r["name"].startswith("CIC")]
    assert row["verdict"] == verdict and row["met"] is (verdict == "earns its place")
    table = tables({"results": {}, "targets": [row]})
    assert table.splitlines()[-1].endswith(f"| {verdict} |")


@pytest.mark.parametrize(
    ("t_low", "bootstrap_low", "met_expected"),
    [(0.01, 0.02, True), (0.01, -0.01, False), (-0.01, 0.02, False)],
)
def test_a_similarity_target_needs_both_intervals_above_zero(t_low, bootstrap_low, met_expected):
    summary = results(0.59, 0.60, -0.004)
    em3 = summary["din"]["em3"]
    em3["relative_to_two_stage"] = dict.fromkeys(SIMILARITIES, {"diff": 0.06, "low": t_low, "high": 0.1})
    boot = em3["similarity_bootstrap"]["material_similarity"]
    em3["similarity_bootstrap"] = dict.fromkeys(SIMILARITIES, boot | {"relative_low": bootstrap_low})
    (row,) = [r for r in targets(summary, SAMPLE) if r["name"].startswith("em3 material similarity")]
    assert row["met"] is met_expected
    printed = tables({"results": {}, "targets": [row]}).splitlines()[-1]
    assert f"bootstrap over seeds and items [{bootstrap_low:+.4f}, +0.0900]" in printed


def test_other_data_is_not_judged_by_the_samples_levels():
    """A config without ``bench`` (someone else's log) gets the interval's bound but no AUC levels."""
    rows = met(targets(results(0.50, 0.51, -0.004), BenchConfig()))
    assert "two_stage mean test AUC" not in rows and "em3 mean test AUC" not in rows
    assert rows["em3 − two_stage AUC: lower end of the 95 % interval (absolute)"] is True
    assert SAMPLE.auc_levels == {"two_stage": 0.58, "em3": 0.59} and SYNTHETIC.auc_levels == {}
