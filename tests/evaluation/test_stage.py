import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from PIL import Image

from em3.config import EvaluateConfig
from em3.data.content_similarity import unit_content
from em3.data.dataset import Split
from em3.evaluation import run_evaluate
from em3.evaluation.stage import (
    HELD_OUT,
    IN_SAMPLE,
    METRICS,
    BehaviourReference,
    ModelResult,
    SharedInputs,
    held_out_reference,
    shared_inputs,
    summarise,
)
from em3.metrics import auc
from em3.models.io import load_model_dir
from em3.train import train
from em3.train.trainer import predict
from tests.conftest import with_updates

PLOTS = ("roc", "calibration", "auc_by_popularity", "similarity")
DEFINED = ("auc", "gauc", "logloss", "cold_auc", "material_similarity")


@pytest.fixture(scope="module")
def evaluated(small_config, small_data, tmp_path_factory):
    """Two tiny trained runs (id_only, em3 on DIN), evaluated with id_only as the baseline."""
    root = tmp_path_factory.mktemp("evaluate")
    run_dirs = []
    for variant in ("id_only", "em3"):
        cfg = with_updates(small_config, output_dir=root / variant, model={"variant": variant}, train={"max_steps": 20})
        train(cfg, small_data)
        run_dirs.append(cfg.output_dir)
    out = root / "evaluation"
    summary = run_evaluate(run_dirs, small_data, EvaluateConfig(baseline="id_only", k_neighbours=5), out)
    return summary, out, run_dirs


def test_json_has_the_documented_shape(evaluated):
    summary, out, _ = evaluated
    assert json.loads((out / "evaluate.json").read_text()) == summary
    models = summary["models"]
    assert set(models) == {"id_only_din", "em3_din"}
    for metrics in models.values():
        for name in DEFINED:
            assert math.isfinite(metrics[name]), name
    for name in (HELD_OUT, IN_SAMPLE):
        assert models["id_only_din"][name] is None  # no content embedding
        assert math.isfinite(models["em3_din"][name])
    assert models["em3_din"][HELD_OUT] != models["em3_din"][IN_SAMPLE], "measured on other interactions"
    assert summary["baseline"] == {"variant": "id_only", "models": {"em3_din": "id_only_din"}}
    relative = summary["relative_to_baseline"]
    assert set(relative) == {"em3_din"}
    expected = models["em3_din"]["auc"] / models["id_only_din"]["auc"] - 1
    assert relative["em3_din"]["auc"] == pytest.approx(expected)
    assert relative["em3_din"]["behaviour_similarity"] is None
    buckets = summary["auc_by_popularity"]
    assert sum(bucket["rows"] for bucket in buckets["buckets"]) == summary["test_rows"]
    assert all(len(values) == len(buckets["buckets"]) for values in buckets["models"].values())
    for per_slice in summary["auc_by_modality"].values():  # the slices partition the test rows
        assert sum(part["rows"] for part in per_slice.values()) == summary["test_rows"]


def test_auc_equals_the_metric_on_predictions(evaluated, small_data):
    summary, _, run_dirs = evaluated
    for run_dir, name in zip(run_dirs, ("id_only_din", "em3_din"), strict=True):
        model, _ = load_model_dir(run_dir / "model")
        logits = predict(model, small_data.test, small_data, batch_size=333)
        expected = auc(small_data.test.label.numpy(), logits)
        assert summary["models"][name]["auc"] == pytest.approx(expected, abs=1e-9)


def test_plots_are_pngs_and_the_report_shows_them(evaluated):
    _, out, _ = evaluated
    html = (out / "report.html").read_text()
    for plot in PLOTS:
        path = out / "plots" / f"{plot}.png"
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"
        assert f'href="plots/{plot}.png"' in html
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert "no content embedding" in html
    assert not list(out.rglob(".*tmp*"))  # no temporary files left behind


def test_mismatched_data_is_refused(evaluated, small_config, tmp_path):
    from em3.data.synthetic_tokens import generate_synthetic

    _, _, run_dirs = evaluated
    synthetic = small_config.data.synthetic.model_copy(update={"n_items": 100})
    other = generate_synthetic(small_config.data.model_copy(update={"synthetic": synthetic}), seed=0)
    with pytest.raises(ValueError, match="evaluate on the data it was trained on"):
        run_evaluate(run_dirs[:1], other, EvaluateConfig(), tmp_path)


def test_each_model_is_compared_with_the_baseline_run_of_its_seed():
    """Two seeds of each variant: seed 1's em3 is compared with seed 1's baseline, not with the first one found."""
    shared = SharedInputs(
        cold_items=np.array([1]),
        raw_content=np.zeros((2, 1)),
        behaviour={name: BehaviourReference(np.array([1]), sp.csr_array((2, 1))) for name in (HELD_OUT, IN_SAMPLE)},
        bucket=np.zeros(3, int),
        bucket_labels=["0–0"],
        modality=np.zeros(3, int),
    )

    def result(variant: str, seed: int, auc_value: float) -> ModelResult:
        metrics = dict.fromkeys(METRICS, 0.5) | {"auc": auc_value}
        run = Path(f"{variant}{seed}")
        return ModelResult(run, variant, "din", seed, metrics, np.zeros(3), np.zeros(1), None, [], {})

    named = {
        "base0": result("two_stage", 0, 0.50),
        "base1": result("two_stage", 1, 0.60),
        "em3_0": result("em3", 0, 0.55),
        "em3_1": result("em3", 1, 0.66),
    }
    summary = summarise(named, shared, EvaluateConfig())
    assert summary["baseline"]["models"] == {"em3_0": "base0", "em3_1": "base1"}
    assert summary["relative_to_baseline"]["em3_0"]["auc"] == pytest.approx(0.1)
    assert summary["relative_to_baseline"]["em3_1"]["auc"] == pytest.approx(0.1)
    assert summary["models"]["em3_1"]["seed"] == 1


def test_validation_inputs_take_cold_items_and_buckets_from_the_validation_split(small_data):
    cfg = EvaluateConfig()
    on_test, on_valid = shared_inputs(small_data, cfg), shared_inputs(small_data, cfg, "valid")
    valid = small_data.valid
    assert set(on_valid.cold_items) == set(valid.item[valid.cold].numpy()) - {0}
    assert len(on_valid.bucket) == len(valid.label) != len(on_test.bucket)
    in_sample_valid, in_sample_test = on_valid.behaviour[IN_SAMPLE], on_test.behaviour[IN_SAMPLE]
    assert np.array_equal(in_sample_valid.popular_items, in_sample_test.popular_items), "counted in training"
    assert (in_sample_valid.interactions != in_sample_test.interactions).nnz == 0
    for split, shared in (("valid", on_valid), ("test", on_test)):
        rows, held_out = getattr(small_data, split), shared.behaviour[HELD_OUT]
        has_content = unit_content(small_data.store)[np.arange(small_data.store.n_rows)].numpy().any(axis=1)
        positive = (rows.label.numpy() > 0) & has_content[rows.item.numpy()]
        expected = np.zeros((small_data.n_items, small_data.n_users))
        np.add.at(expected, (rows.item.numpy()[positive], rows.user.numpy()[positive]), 1)
        np.testing.assert_array_equal(held_out.interactions.toarray(), expected)  # that period's positives only
        candidates = np.flatnonzero(expected.sum(1) > 0)
        assert set(held_out.popular_items) <= set(candidates)
        assert len(held_out.popular_items) == math.ceil(round(len(candidates) * (1 - cfg.popular_quantile), 9))
        least_popular = expected.sum(1)[held_out.popular_items].min()
        assert (expected.sum(1)[np.setdiff1d(candidates, held_out.popular_items)] <= least_popular).all()


def test_held_out_behaviour_reference_by_hand():
    """Rows 1..5; item 5 has no content. Popular: the top fifth (rounded up) of items with content and a positive
    in the period, by positives, ties by item id; negatives, and items without content, count nowhere."""
    rows = Split(
        user=torch.tensor([0, 1, 2, 0, 1, 0, 2, 1, 0]),
        item=torch.tensor([2, 2, 4, 4, 1, 3, 5, 5, 5]),
        context=torch.zeros(9, 0, dtype=torch.long),
        history=torch.zeros(9, 1, dtype=torch.long),
        label=torch.tensor([1, 1, 1, 1, 1, 0, 1, 1, 1], dtype=torch.float32),
        cold=torch.zeros(9, dtype=torch.bool),
    )
    data = SimpleNamespace(n_items=6, n_users=3, store=SimpleNamespace(item_ids=["e", "d", "c", "b", "a"]))
    has_content = np.array([False, True, True, True, True, False])
    ref = held_out_reference(rows, data, has_content, quantile=0.5)
    assert ref.interactions.toarray().tolist() == [
        [0, 0, 0],
        [0, 1, 0],
        [1, 1, 0],
        [0, 0, 0],  # item 3: a negative only
        [1, 0, 1],
        [0, 0, 0],  # item 5: three positives, no content
    ]
    # candidates 1 (1 positive), 2 and 4 (2 each): ceil(3 × 0.5) = 2 popular; 2 and 4 tie, both kept
    np.testing.assert_array_equal(ref.popular_items, [2, 4])
    ref = held_out_reference(rows, data, has_content, quantile=0.8)
    np.testing.assert_array_equal(ref.popular_items, [4])  # one of the tied pair: item 4's id "b" before 2's "d"
