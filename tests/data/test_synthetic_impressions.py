"""The synthetic native log's click model: a catalogue that turns over, shared taste segments, the recorded ceiling."""

import json

import numpy as np
import pandas as pd
import pytest

from em3.config import RawSyntheticConfig
from em3.data.synthetic_impressions import (
    CLICK_TRUTH,
    draw_tastes,
    generate_native_synthetic,
    items_table,
    native_catalogue,
    oracle_by_split,
)
from em3.metrics import auc

SMALL = RawSyntheticConfig(n_users=200, n_items=300, n_days=60, late_release_days=10, image_size=32)


def cold_share_of_last_days(out_dir, n_days: int) -> float:
    """The share of impressions in the last 15 % of days whose item was never shown in the first 70 %."""
    log = pd.read_parquet(out_dir / "impressions.parquet")
    ts = pd.to_datetime(log["ts"])
    day = (ts - ts.min()).dt.days
    shown_early = set(log.loc[day < 0.7 * n_days, "item_id"])
    late = log.loc[day >= 0.85 * n_days, "item_id"]
    return float((~late.isin(shown_early)).mean())


def test_a_shelf_life_turns_the_catalogue_over_so_late_items_are_new(tmp_path):
    generate_native_synthetic(SMALL, 6000, tmp_path / "uniform")
    generate_native_synthetic(SMALL.model_copy(update={"shelf_days": 5.0}), 6000, tmp_path / "shelf")
    # uniform over released items: only the late products (15 %, released in the last 10 days) are new at the end;
    # with a 5-day shelf life almost everything shown in the last 9 days was released after day 42
    assert cold_share_of_last_days(tmp_path / "uniform", 60) < 0.3
    assert cold_share_of_last_days(tmp_path / "shelf", 60) > 0.8


def test_taste_segments_share_a_taste_and_keep_unit_variance():
    rng = np.random.default_rng(0)
    independent = draw_tastes(SMALL.model_copy(update={"n_users": 1000}), 33, rng)
    one = draw_tastes(SMALL.model_copy(update={"n_users": 1000, "taste_segments": 1, "segment_spread": 0.5}), 33, rng)
    assert independent.shape == one.shape == (1000, 33, SMALL.taste_rank)
    # (segment + 0.5 own) / sqrt(1.25): around the shared part each user keeps 0.5 / sqrt(1.25) = 0.447 of spread;
    # 66,000 entries put the estimate's standard error near 0.002
    assert np.std(one - one.mean(0)) == pytest.approx(0.5 / np.sqrt(1.25), abs=0.01)
    assert np.std(independent - independent.mean(0)) == pytest.approx(1.0, abs=0.02)
    two = draw_tastes(SMALL.model_copy(update={"taste_segments": 2, "segment_spread": 0.0}), 33, rng)
    assert len(np.unique(two.reshape(len(two), -1), axis=0)) == 2, "no spread: every user is one of two tastes"


def test_the_click_models_ceiling_is_recorded(tmp_path):
    summary = generate_native_synthetic(SMALL.model_copy(update={"taste_segments": 4}), 6000, tmp_path / "a")
    recorded = json.loads((tmp_path / "a" / "click_model.json").read_text())
    assert recorded == {key: summary[key] for key in ("oracle_auc", "taste_auc", "popularity_auc")}
    assert recorded["oracle_auc"] > max(recorded["taste_auc"], recorded["popularity_auc"]) > 0.55
    flat = generate_native_synthetic(SMALL.model_copy(update={"taste_strength": 0.0}), 6000, tmp_path / "b")
    assert flat["taste_auc"] == 0.5, "no taste: the taste part ranks nothing"


def test_the_true_logits_are_kept_row_for_row_and_score_each_split(tmp_path):
    generate_native_synthetic(SMALL, 6000, tmp_path)
    log = pd.read_parquet(tmp_path / "impressions.parquet")
    truth = pd.read_parquet(tmp_path / CLICK_TRUTH)
    assert len(truth) == len(log) and (truth["label"] == log["label"]).all() and (truth["ts"] == log["ts"]).all()
    recorded = json.loads((tmp_path / "click_model.json").read_text())
    assert auc(truth["label"], truth["logit"]) == pytest.approx(recorded["oracle_auc"], abs=1e-6)  # float32 logits
    ts = pd.to_datetime(log["ts"])
    valid_start, test_start = (ts.min() + (ts.max() - ts.min()) * f for f in (0.7, 0.85))
    by_split = oracle_by_split(tmp_path, valid_start.date(), test_start.date())
    test = pd.to_datetime(truth["ts"]) >= pd.Timestamp(test_start.date())
    assert by_split["test"] == auc(truth["label"][test], truth["logit"][test])
    assert all(0.5 < value < 1 for value in by_split.values())


def test_the_catalogue_rebuilt_without_writing_is_the_one_written(tmp_path):
    """``native_catalogue`` (what the text-budget check reads) draws exactly what the generator wrote."""
    generate_native_synthetic(SMALL, 500, tmp_path)
    written = pd.read_parquet(tmp_path / "items.parquet")
    rebuilt = items_table(native_catalogue(SMALL))
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), written, check_dtype=False)
