"""The text budget (DESIGN §4): which texts lose a deciding word to the encoder's truncation, checked with the real
MiniLM tokenizer, and the synthetic benchmark's budget keeping its attribute words."""

from pathlib import Path

import numpy as np
import pytest

from em3.config import load_config
from em3.data.synthetic_impressions import deciding_words, items_table, native_catalogue
from em3.data.text_budget import words_cut
from em3.features.encoders import BUILTIN_TEXT_ENCODER, load_tokenizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(BUILTIN_TEXT_ENCODER)


def test_a_word_past_the_budget_is_cut_one_inside_or_absent_is_not(tokenizer):
    texts = ["Dress in smooth silk. Slim fit.", "Dress in smooth silk. Slim fit.", "Dress in smooth silk."]
    words = [("silk", "slim"), ("silk",), ("slim",)]  # [CLS] dress in smooth silk . | slim fit . [SEP]
    assert words_cut(texts, words, tokenizer, max_tokens=6).tolist() == [True, False, False]
    assert words_cut(texts, words, tokenizer, max_tokens=9).tolist() == [False, False, False]


def test_the_synthetic_benchmarks_budget_keeps_every_deciding_word(tokenizer):
    """At 32 tokens (the old budget) the deciding words of many items fell past it; the config's budget keeps
    them for all but under 1 % of the items."""
    cfg = load_config(ROOT / "configs" / "bench_synthetic.yaml")
    catalogue = native_catalogue(cfg.raw_synthetic.model_copy(update={"n_items": 1000}))
    texts, words = items_table(catalogue)["text"].tolist(), deciding_words(catalogue)
    assert np.mean(words_cut(texts, words, tokenizer, 32)) > 0.05
    assert np.mean(words_cut(texts, words, tokenizer, cfg.features.max_text_tokens)) < 0.01
