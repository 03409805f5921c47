"""bench/modality_diagnosis.py: hiding the text changes the tower's input only, and a diagnosis of trained models
has every documented part, each within its range."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from em3.data.content_similarity import split_similarity
from em3.train import train
from tests.models.test_missing_modalities import config, tiny_data, tiny_store

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("modality_diagnosis", ROOT / "bench" / "modality_diagnosis.py")
diagnosis = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diagnosis)


def test_hiding_the_text_removes_it_from_the_tower_and_keeps_the_similarity_inputs():
    data = tiny_data(tiny_store())
    hidden = diagnosis.hide_text_from_tower(data, data.test)
    rows = torch.arange(data.n_items)
    before, after = data.store.gather(rows), hidden.store.gather(rows)
    assert before.present[:, 1].any() and not after.present[:, 1].any()
    assert torch.equal(after.present[:, 0], before.present[:, 0]) and torch.equal(
        after.image_tokens, before.image_tokens
    )
    assert not after.pooled[:, -before.text_tokens.shape[-1] :].any()
    assert torch.equal(split_similarity(hidden.store, data.test), split_similarity(data.store, data.test))


@pytest.mark.parametrize("variant", ["em3", "two_stage"])
def test_a_diagnosis_reports_each_part_within_its_range(small_config, tmp_path, variant):
    data = tiny_data(tiny_store())
    cfg = config(small_config, variant, tmp_path)
    train(cfg, data)
    report = diagnosis.diagnose(cfg.output_dir, data)
    slices = set(report["test_auc_by_modality"])
    assert slices == {"image+text", "image only", "text only", "neither"}
    for key in ("test_auc_by_modality_text_hidden", "test_auc_by_modality_unseen_ids_zero"):
        assert {name: part["rows"] for name, part in report[key].items()} == {
            name: part["rows"] for name, part in report["test_auc_by_modality"].items()
        }
    shift = report["text_shift"]
    assert -1 <= shift["cosine_with_vs_without_text"] <= 1 and shift["norm_with_text"] > 0
    assert report["fill_r2"] <= 1
    share = report["text_attention_share"]
    assert (share is None) == (variant == "two_stage") and (share is None or 0 < share < 1)
    shares = diagnosis.modality_shares(data)
    assert all(math.isclose(sum(split.values()), 1) for split in shares.values())
    assert np.isfinite([part["auc"] for part in report["valid_auc_by_modality"].values()]).any()
