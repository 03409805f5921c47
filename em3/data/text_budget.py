"""Whether a text encoder's token budget keeps the words that decide (DESIGN §4: texts fit the encoder's budget, no
deciding word cut). The encoder keeps the first ``max_tokens`` tokens of a text, its special tokens counted; a
deciding word past them is invisible to every content model, however it fuses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _holds(ids: list[int], word: list[int]) -> bool:
    return any(ids[start : start + len(word)] == word for start in range(len(ids) - len(word) + 1))


def words_cut(texts: Sequence[str], deciding: Sequence[Sequence[str]], tokenizer, max_tokens: int) -> np.ndarray:
    """(N,) True where text i holds a word of ``deciding[i]`` that its first ``max_tokens`` tokens do not (the
    word's tokens matched as a run, as the tokenizer splits the word alone)."""
    pieces: dict[str, list[int]] = {}
    cut = np.zeros(len(texts), dtype=bool)
    for i, (text, words) in enumerate(zip(texts, deciding, strict=True)):
        whole = tokenizer(text)["input_ids"]
        kept = whole[:max_tokens]
        for word in words:
            if word not in pieces:
                pieces[word] = tokenizer(word, add_special_tokens=False)["input_ids"]
            if _holds(whole, pieces[word]) and not _holds(kept, pieces[word]):
                cut[i] = True
                break
    return cut
