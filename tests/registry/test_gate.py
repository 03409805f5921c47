import math

import pytest

from em3.config import ConfigError, RegistryConfig, parse_config
from em3.registry import CHALLENGER, CHAMPION, decide

GATE = RegistryConfig(min_auc=0.55, min_delta=0.0, cold_tolerance=0.005)
GOOD = {"auc": 0.62, "gauc": 0.60, "logloss": 0.55, "cold_auc": 0.58, "cold_gauc": 0.57, "cold_logloss": 0.6}


def metrics(**changes):
    values = {**GOOD, **changes}
    return {key: value for key, value in values.items() if value != "absent"}


CASES = [
    # (id, candidate, champion, gate, expected alias, fragments the reason must contain)
    ("first model over the threshold", GOOD, None, GATE, CHAMPION, ["auc 0.6200 >= min_auc 0.55", "no champion yet"]),
    ("below min_auc", metrics(auc=0.54), None, GATE, CHALLENGER, ["auc 0.5400 < min_auc 0.55"]),
    ("better than the champion", GOOD, metrics(auc=0.61), GATE, CHAMPION, ["auc 0.6200 >= champion's 0.6100 +0"]),
    ("equal AUC passes with min_delta 0", GOOD, GOOD, GATE, CHAMPION, ["auc 0.6200 >= champion's 0.6200"]),
    ("worse AUC than the champion", GOOD, metrics(auc=0.63), GATE, CHALLENGER, ["auc 0.6200 < champion's 0.6300"]),
    (
        "better, but not by min_delta",
        GOOD,
        metrics(auc=0.61),
        GATE.model_copy(update={"min_delta": 0.02}),
        CHALLENGER,
        ["auc 0.6200 < champion's 0.6100 +0.02 (min_delta)"],
    ),
    (
        "cold drop beyond tolerance",
        metrics(cold_auc=0.57),
        GOOD,
        GATE,
        CHALLENGER,
        ["cold_auc 0.5700 < champion's 0.5800 -0.005 (cold_tolerance)"],
    ),
    ("cold drop within tolerance", metrics(cold_auc=0.576), GOOD, GATE, CHAMPION, ["cold_auc 0.5760 >= champion's"]),
    (
        "champion without cold_auc",
        GOOD,
        metrics(cold_auc="absent"),
        GATE,
        CHAMPION,
        ["cold_auc not compared (candidate 0.5800, champion missing)"],
    ),
    ("NaN auc", metrics(auc=math.nan), None, GATE, CHALLENGER, ["refused: auc is NaN"]),
    ("infinite logloss", metrics(logloss=math.inf), None, GATE, CHALLENGER, ["refused: logloss is inf (not finite)"]),
    ("missing cold_auc", metrics(cold_auc="absent"), None, GATE, CHALLENGER, ["refused: cold_auc is missing"]),
    ("null gauc (undefined in train.json)", metrics(gauc=None), None, GATE, CHALLENGER, ["gauc is missing"]),
    (
        "every problem is named",
        metrics(auc=math.nan, gauc=None),
        None,
        GATE,
        CHALLENGER,
        ["auc is NaN", "gauc is missing"],
    ),
    (
        "several failed checks are all named",
        metrics(auc=0.53, cold_auc=0.5),
        GOOD,
        GATE,
        CHALLENGER,
        ["< min_auc", "< champion's 0.6200", "cold_auc 0.5000 <"],
    ),
    ("an unrequired metric may be missing", metrics(cold_gauc="absent"), None, GATE, CHAMPION, []),
]


@pytest.mark.parametrize(
    ("candidate", "champion", "gate", "alias", "fragments"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(candidate, champion, gate, alias, fragments):
    decision = decide(candidate, champion, gate)
    assert decision.alias == alias, decision.reason
    for fragment in fragments:
        assert fragment in decision.reason


def test_a_challenger_reason_names_only_the_failed_checks():
    reason = decide(metrics(auc=0.54), GOOD, GATE).reason
    assert "min_auc" in reason and ">=" not in reason


def test_auc_must_be_a_required_metric():
    with pytest.raises(ConfigError, match=r"required_metrics must include 'auc'"):
        parse_config({"registry": {"required_metrics": ["gauc"]}})


def test_registry_section_has_the_documented_defaults():
    gate = parse_config({}).registry
    assert (gate.tracking_uri, gate.experiment, gate.model_name) == ("sqlite:///mlflow.db", "em3", "em3")
    assert (gate.min_auc, gate.min_delta, gate.cold_tolerance) == (0.55, 0.0, 0.005)
    assert gate.required_metrics == ("auc", "gauc", "logloss", "cold_auc")


def test_a_model_whose_data_drifted_stays_challenger_unless_configured_and_says_where_it_compared():
    flag = "label_rate of label 3.1 > 2"
    drifted = decide(GOOD, metrics(auc=0.60), GATE, "champion v3 scored on this run's test rows", (flag,))
    assert drifted.alias == CHALLENGER and drifted.reason.startswith(f"drift flagged in its data: {flag}")
    assert drifted.reason.endswith("[champion v3 scored on this run's test rows]")
    allowed = decide(GOOD, metrics(auc=0.60), GATE.model_copy(update={"promote_despite_drift": True}), "", (flag,))
    assert allowed.alias == CHAMPION and "drift" not in allowed.reason
    assert decide(GOOD, None, GATE, "never shown without a champion").reason.endswith("no champion yet")
