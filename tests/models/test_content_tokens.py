"""em3's fusion reads each modality's pooled vector as a summary token, its finer tokens, or both (DESIGN §1)."""

import pytest
import torch

from em3.models.content import TokenContent
from tests.conftest import with_updates


def tower(small_config, small_data, tokens: str) -> TokenContent:
    torch.manual_seed(0)
    cfg = with_updates(small_config, model={"content_tokens": tokens}).model
    store = small_data.store
    return TokenContent(store.image_tokens.shape[-1], store.text_tokens.shape[-1], cfg, store.n_rows).eval()


@pytest.mark.parametrize("tokens", ["both", "fine", "summary"])
def test_each_choice_reads_what_it_names(small_config, small_data, tokens):
    model = tower(small_config, small_data, tokens)
    content = small_data.store.gather(torch.arange(1, 41))
    with torch.no_grad():
        before = model.fuse(content)
        fine_changed = content.image_tokens + 1.0
        pooled_changed = content.pooled + 1.0
        after_fine = model.fuse(type(content)(**{**vars(content), "image_tokens": fine_changed}))
        after_pooled = model.fuse(type(content)(**{**vars(content), "pooled": pooled_changed}))
    reads_fine, reads_summary = not torch.allclose(after_fine, before), not torch.allclose(after_pooled, before)
    expected = {"both": (True, True), "fine": (True, False), "summary": (False, True)}[tokens]
    assert (reads_fine, reads_summary) == expected


def test_a_missing_modalitys_summary_token_is_masked(small_config, small_data):
    model = tower(small_config, small_data, "summary")
    content = small_data.store.gather(torch.arange(1, 41))
    content.present[:, 1] = False  # no text for any of these items
    with torch.no_grad():
        before = model.fuse(content)
        text = content.pooled[:, small_data.store.image_tokens.shape[-1] :]
        text += 5.0  # whatever the pooled text holds, it is masked
        torch.testing.assert_close(model.fuse(content), before, rtol=0, atol=0)
