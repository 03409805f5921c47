import numpy as np
import pytest

from em3.data.token_store import TokenStore
from em3.evaluation.modality import MODALITY_SLICES, auc_by_modality, item_modalities
from em3.metrics import auc


def store_with(image: list[bool], text: list[bool]) -> TokenStore:
    """A store whose item rows 1..n have an image / a text as given (row 0: padding, neither)."""
    n = len(image) + 1
    image_mask = np.zeros((n, 2), bool)
    text_mask = np.zeros((n, 3), bool)
    image_mask[1:, 0], text_mask[1:, 1] = image, text
    return TokenStore(
        item_ids=[f"i{k}" for k in range(1, n)],
        image_tokens=np.zeros((n, 2, 4), np.float16),
        image_mask=image_mask,
        text_tokens=np.zeros((n, 3, 5), np.float16),
        text_mask=text_mask,
        pooled_image=np.zeros((n, 4), np.float16),
        pooled_text=np.zeros((n, 5), np.float16),
    )


def test_each_row_gets_the_slice_of_its_items_modalities():
    store = store_with(image=[True, True, False, False], text=[True, False, True, False])
    codes = item_modalities(store, np.array([2, 1, 1, 4, 3, 0]))
    assert [MODALITY_SLICES[c] for c in codes] == [
        "image only",
        "image+text",
        "image+text",
        "neither",
        "text only",
        "neither",
    ]


def test_slice_auc_is_the_auc_of_its_rows_and_empty_slices_are_left_out():
    rng = np.random.default_rng(0)
    labels, logits = rng.integers(0, 2, 200).astype(float), rng.normal(size=200)
    codes = rng.choice([0, 1], 200)  # image+text and image only; no text-only or content-less rows
    result = auc_by_modality(labels, logits, codes)
    assert set(result) == {"image+text", "image only"}
    for code, name in enumerate(MODALITY_SLICES[:2]):
        rows = codes == code
        assert result[name]["rows"] == rows.sum() and result[name]["positives"] == labels[rows].sum()
        assert result[name]["auc"] == pytest.approx(auc(labels[rows], logits[rows]))
