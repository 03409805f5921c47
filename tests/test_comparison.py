"""``em3 compare``: each run against the two_stage run of the same backbone and seed."""

from em3.comparison import comparison_rows


def run(name: str, variant: str, seed: int, auc: float, backbone: str = "din") -> dict:
    test = {"auc": auc, "gauc": auc, "logloss": 0.6, "cold_auc": auc}
    return {
        "name": name,
        "variant": variant,
        "backbone": backbone,
        "seed": seed,
        "test": test,
        "parameters": {"trainable": 10},
        "train_seconds": 1.0,
    }


def test_each_run_is_compared_with_the_baseline_of_its_seed_and_backbone():
    runs = [
        run("em3-s0", "em3", 0, 0.66),
        run("two-s0", "two_stage", 0, 0.60),
        run("two-s1", "two_stage", 1, 0.55),  # the last two_stage run of din: not seed 0's baseline
        run("em3-s1", "em3", 1, 0.66),
        run("em3-dcn-s0", "em3", 0, 0.66, "dcn"),  # no dcn baseline
    ]
    rows = {row["run"]: row for row in comparison_rows(runs)}
    assert rows["em3-s0"]["Δauc vs two_stage"] == "+10.00 %" and rows["em3-s0"]["seed"] == "0"
    assert rows["em3-s1"]["Δauc vs two_stage"] == "+20.00 %"
    assert rows["em3-dcn-s0"]["Δauc vs two_stage"] == "n/a"
    assert rows["two-s0"]["Δauc vs two_stage"] == "n/a"


def test_two_baselines_of_one_seed_are_ambiguous():
    runs = [run("em3", "em3", 0, 0.66), run("a", "two_stage", 0, 0.60), run("b", "two_stage", 0, 0.50)]
    assert comparison_rows(runs)[0]["Δauc vs two_stage"] == "ambiguous"
