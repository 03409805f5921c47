import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from em3.metrics import auc, gauc, logloss, ranking_metrics


@pytest.fixture
def random_log():
    rng = np.random.default_rng(3)
    n = 2_000
    users = rng.integers(0, 60, n)
    labels = (rng.random(n) < 0.3).astype(int)
    scores = labels * 0.5 + rng.normal(size=n)
    scores[::7] = np.round(scores[::7], 1)  # ties
    return users, labels, scores


def test_auc_matches_scikit_learn(random_log):
    _, labels, scores = random_log
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_gauc_matches_a_per_user_reference(random_log):
    users, labels, scores = random_log
    total = weight = 0.0
    for u in np.unique(users):
        rows = users == u
        if labels[rows].min() != labels[rows].max():
            total += roc_auc_score(labels[rows], scores[rows]) * rows.sum()
            weight += rows.sum()
    assert gauc(users, labels, scores) == pytest.approx(total / weight, abs=1e-12)


def test_gauc_skips_users_with_one_class():
    users = np.array([1, 1, 2, 2, 2])
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.1, 0.5, 0.7])
    assert gauc(users, labels, scores) == pytest.approx(1.0)


def test_logloss_matches_scikit_learn(random_log):
    _, labels, scores = random_log
    p = 1 / (1 + np.exp(-scores))
    assert logloss(labels, p) == pytest.approx(log_loss(labels, p), rel=1e-9)


def test_single_class_gives_nan_not_an_error():
    assert math.isnan(auc(np.ones(5), np.arange(5)))


def test_ranking_metrics_reports_the_cold_slice(random_log):
    users, labels, scores = random_log
    cold = np.zeros(len(labels), dtype=bool)
    cold[:500] = True
    result = ranking_metrics(users, labels, scores, cold)
    assert result["cold_rows"] == 500
    assert result["cold_auc"] == pytest.approx(roc_auc_score(labels[:500], scores[:500]))
    assert result["auc"] == pytest.approx(roc_auc_score(labels, scores))
