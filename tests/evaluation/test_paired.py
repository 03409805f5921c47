import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from em3.evaluation.paired import (
    bootstrap_auc_difference,
    bootstrap_mean_difference,
    seed_interval,
    unit_bootstrap_weights,
    weighted_auc,
    weighted_nanmean,
)


@pytest.fixture
def scored():
    rng = np.random.default_rng(1)
    n = 3000
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(size=n) + 0.6 * labels, 1)  # rounded: many ties
    users = rng.integers(0, 200, n)
    return labels, scores, users


def test_weighted_auc_equals_scikit_learn_with_sample_weights_and_ties(scored):
    labels, scores, users = scored
    weights = unit_bootstrap_weights(users, 4, seed=3)
    expected = [roc_auc_score(labels, scores, sample_weight=w) for w in weights]
    np.testing.assert_allclose(weighted_auc(labels, scores, weights), expected, rtol=1e-5)
    np.testing.assert_allclose(
        weighted_auc(labels, scores, np.ones((1, len(labels))))[0], roc_auc_score(labels, scores)
    )


def test_bootstrap_weights_resample_whole_users(scored):
    _, _, users = scored
    weights = unit_bootstrap_weights(users, 5, seed=0)
    n_users = len(np.unique(users))
    for row in weights:
        per_user = {u: set(row[users == u]) for u in np.unique(users)}
        assert all(len(values) == 1 for values in per_user.values())  # a user's rows share one count
        assert sum(values.pop() for values in per_user.values()) == n_users  # n_users draws with replacement
    np.testing.assert_array_equal(weights, unit_bootstrap_weights(users, 5, seed=0))  # seeded


def test_identical_models_differ_by_zero_and_a_better_one_gets_an_interval_above_zero(scored):
    labels, scores, users = scored
    rng = np.random.default_rng(2)
    same = bootstrap_auc_difference(labels, users, [scores], [scores], n_boot=200)
    assert same["diff"] == same["low"] == same["high"] == 0
    better = [scores + rng.normal(0, 0.1, len(scores)) for _ in range(3)]
    worse = [scores + rng.normal(0, 2.0, len(scores)) for _ in range(3)]
    result = bootstrap_auc_difference(labels, users, better, worse, n_boot=200)
    assert 0 < result["low"] < result["diff"] < result["high"]
    assert result["relative"] == pytest.approx(result["diff"] / np.mean([roc_auc_score(labels, w) for w in worse]))


def test_the_interval_redraws_seeds_as_well_as_users():
    """Seed noise alone: many users, so user noise is small, but one seed's model is better than the baseline and
    the other's worse. Redrawing both seeds, a quarter of the replicates hold the worse seed twice, a quarter the
    better one twice, so the interval reaches out to both per-seed differences; an interval over users alone (seeds
    averaged inside every replicate) sits tightly around their mean."""
    rng = np.random.default_rng(4)
    n = 20000
    labels, users = rng.integers(0, 2, n), rng.integers(0, 2000, n)
    baseline = [labels + rng.normal(size=n)] * 2
    model = [2 * labels + rng.normal(size=n), rng.normal(size=n)]  # seed 0: better; seed 1: no signal
    per_seed = [roc_auc_score(labels, m) - roc_auc_score(labels, b) for m, b in zip(model, baseline, strict=True)]
    result = bootstrap_auc_difference(labels, users, model, baseline, n_boot=400)
    assert result["diff"] == pytest.approx(np.mean(per_seed))
    margin = 0.02  # user noise on the difference with 20,000 rows: a few thousandths
    assert result["low"] < min(per_seed) + margin and result["high"] > max(per_seed) - margin
    with pytest.raises(ValueError, match="paired by seed"):
        bootstrap_auc_difference(labels, users, model, baseline[:1])


def test_weighted_nanmean_is_the_mean_of_the_drawn_items_without_the_undefined_ones():
    values = np.array([0.1, np.nan, 0.4, 0.7])
    weights = np.array([[1, 1, 1, 1], [0, 5, 2, 1], [3, 0, 0, 1]], dtype=np.float32)
    expected = [np.nanmean(values), (2 * 0.4 + 0.7) / 3, (3 * 0.1 + 0.7) / 4]
    np.testing.assert_allclose(weighted_nanmean(values, weights), expected, rtol=1e-6)


def test_mean_difference_of_a_model_better_on_every_item_by_one_amount_has_that_difference_and_no_width():
    rng = np.random.default_rng(5)
    baseline = [rng.uniform(0.01, 0.05, 300) for _ in range(3)]
    baseline[0][:20] = np.nan  # undefined items (no interactions): the same in every run, and ignored
    for b in baseline[1:]:
        b[:20] = np.nan
    same = bootstrap_mean_difference(baseline, baseline, n_boot=200)
    assert same["diff"] == same["low"] == same["high"] == 0
    model = [b + 0.01 for b in baseline]
    result = bootstrap_mean_difference(model, baseline, n_boot=200)
    assert (result["diff"], result["low"], result["high"]) == pytest.approx((0.01, 0.01, 0.01), abs=1e-9)
    assert result["relative"] == pytest.approx(0.01 / np.mean([np.nanmean(b) for b in baseline]))
    with pytest.raises(ValueError, match="paired by seed"):
        bootstrap_mean_difference(model, baseline[:2])


def test_mean_difference_interval_redraws_the_items():
    """Item noise alone (every seed the same): the interval's half-width is that of the items' mean difference,
    1.96 standard errors, up to the percentile bootstrap's own error with 1,000 replicates (a few per cent; 25 %
    allowed)."""
    rng = np.random.default_rng(6)
    baseline = rng.uniform(0.01, 0.05, 500)
    model = baseline + rng.normal(0.002, 0.01, 500)
    result = bootstrap_mean_difference([model] * 3, [baseline] * 3, n_boot=1000)
    half_width = 1.96 * np.std(model - baseline, ddof=1) / np.sqrt(500)
    assert result["diff"] == pytest.approx(np.mean(model - baseline))
    assert (result["high"] - result["low"]) / 2 == pytest.approx(half_width, rel=0.25)


def test_seed_interval_is_the_student_t_interval():
    diffs = [0.010, 0.004, 0.007, 0.012, 0.001]
    result = seed_interval(diffs)
    low, high = stats.t.interval(0.95, len(diffs) - 1, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert result["diff"] == pytest.approx(np.mean(diffs))
    assert (result["low"], result["high"]) == pytest.approx((low, high))
    assert np.isnan(seed_interval([0.01, float("nan")])["low"])  # one finite seed: no interval
