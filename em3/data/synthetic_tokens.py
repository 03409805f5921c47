"""A token-level synthetic click log whose click model needs what EM3 claims to add.

- Items carry visual and textual latent attributes; their image and text *tokens* carry them non-linearly
  (each token position is a different random tanh view of the latent), some items miss a modality.
- A user likes *combinations*: the click score is bilinear in (user·visual) × (user·textual).
- A long history matters: each user switches between two taste modes (a sticky Markov chain over days), and only
  recent clicks reveal the mode in force.
- Item-level quirks (an appeal offset) are carried by no content: only item IDs can learn them.
- A share of items are new arrivals, released during the validation and test periods: cold start.

Everything is a function of the seed. The content goes to an in-memory ``TokenStore``, as the feature stage would
write it, so the model path is the production one.
"""

from __future__ import annotations

import numpy as np
import torch

from em3.config import DataConfig
from em3.data.dataset import RankingData, Split
from em3.data.history import earlier_histories
from em3.data.token_store import TokenStore

N_MODES = 2
MODE_SWITCH_PROBABILITY = 0.15
N_CHANNELS = 2
N_SEGMENTS = 8
AFFINITY_SCALE = 0.8
COMBINATION_WEIGHT = 1.0
STYLE_WEIGHT = 1.0
QUIRK_STD = 0.5


def _tokens(rng: np.random.Generator, latent: np.ndarray, n_tokens: int, dim: int) -> np.ndarray:
    """(n, k) latents → (n, n_tokens, dim) tokens, each position a random non-linear view plus noise."""
    k = latent.shape[1]
    views = rng.normal(0, 1.5 / np.sqrt(k), size=(n_tokens, dim, k))
    offsets = rng.normal(0, 0.5, size=(n_tokens, dim))
    tokens = np.tanh(np.einsum("tdk,nk->ntd", views, latent) + offsets)
    return tokens + rng.normal(0, 0.1, size=tokens.shape)


def _masked_mean(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float64)
    return (tokens * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def synthetic_store(cfg: DataConfig, rng: np.random.Generator) -> tuple[TokenStore, np.ndarray, np.ndarray]:
    """Item content with its latents: (store, visual latents, textual latents), row 0 being the padding item."""
    s = cfg.synthetic
    n_rows = s.n_items + 1
    visual = rng.normal(size=(n_rows, s.n_attributes))
    textual = rng.normal(size=(n_rows, s.n_attributes))
    image_tokens = _tokens(rng, visual, s.image_tokens, s.image_dim)
    text_tokens = _tokens(rng, textual, s.text_tokens, s.text_dim)
    image_mask = np.ones((n_rows, s.image_tokens), dtype=bool)
    text_lengths = rng.integers(s.text_tokens // 2, s.text_tokens + 1, size=n_rows)
    text_mask = np.arange(s.text_tokens)[None, :] < text_lengths[:, None]
    image_mask[rng.random(n_rows) < s.missing_modality_rate] = False
    text_mask[rng.random(n_rows) < s.missing_modality_rate] = False
    image_mask[0] = text_mask[0] = False
    image_tokens *= image_mask[..., None]
    text_tokens *= text_mask[..., None]
    store = TokenStore(
        item_ids=[f"synthetic-{row:07d}" for row in range(1, n_rows)],
        image_tokens=image_tokens.astype(np.float16),
        image_mask=image_mask,
        text_tokens=text_tokens.astype(np.float16),
        text_mask=text_mask,
        pooled_image=_masked_mean(image_tokens, image_mask).astype(np.float16),
        pooled_text=_masked_mean(text_tokens, text_mask).astype(np.float16),
    )
    return store, visual, textual


def generate_synthetic(cfg: DataConfig, seed: int) -> RankingData:
    s = cfg.synthetic
    rng = np.random.default_rng(seed)
    store, visual, textual = synthetic_store(cfg, rng)
    n_rows = store.n_rows
    test_start = s.n_days - cfg.test_days
    valid_start = test_start - cfg.valid_days
    if valid_start < 2:
        raise ValueError(
            f"data: n_days ({s.n_days}) must exceed valid_days + test_days ({cfg.valid_days + cfg.test_days}) by 2"
        )

    # Items: a style every user values, set by how look and text combine; appeal only IDs can learn; a release day
    # (new arrivals come out during the validation and test periods: cold start, which model selection sees too).
    style_look, style_text = rng.normal(size=(2, s.n_attributes))
    style = (visual @ style_look) * (textual @ style_text) / s.n_attributes
    quirk = rng.normal(0, QUIRK_STD, size=n_rows)
    release = rng.integers(0, max(1, valid_start // 2), size=n_rows)
    new_items = rng.permutation(np.arange(1, n_rows))[: int(s.new_item_fraction * s.n_items)]
    release[new_items] = rng.integers(valid_start, s.n_days, size=len(new_items))

    # Tastes: a few segment prototypes, bilinear in visual × textual attributes. Each user has two of them (taste
    # modes); the mode in force drifts over days, so only recent history tells which one applies.
    n_users = s.n_users + 1
    taste_visual = rng.normal(size=(N_SEGMENTS, s.n_attributes))
    taste_textual = rng.normal(size=(N_SEGMENTS, s.n_attributes))
    user_segments = rng.integers(0, N_SEGMENTS, size=(n_users, N_MODES))
    switches = rng.random((n_users, s.n_days)) < MODE_SWITCH_PROBABILITY
    mode = (rng.integers(0, N_MODES, size=(n_users, 1)) + np.cumsum(switches, axis=1)) % N_MODES

    # Impressions: each user sees random released items on random days, over one of two channels.
    rows = s.n_users * s.impressions_per_user
    user = np.repeat(np.arange(1, n_users), s.impressions_per_user)
    day = rng.integers(0, s.n_days, size=rows)
    item = np.empty(rows, dtype=np.int64)
    for d in range(s.n_days):
        on_day = np.flatnonzero(day == d)
        released = np.flatnonzero((release <= d) & (np.arange(n_rows) > 0))
        item[on_day] = rng.choice(released, size=len(on_day))
    channel = rng.integers(1, N_CHANNELS + 1, size=rows)

    segment = user_segments[user, mode[user, day]]
    likes_look = np.einsum("nk,nk->n", taste_visual[segment], visual[item]) / np.sqrt(s.n_attributes)
    likes_text = np.einsum("nk,nk->n", taste_textual[segment], textual[item]) / np.sqrt(s.n_attributes)
    affinity = likes_look + likes_text + COMBINATION_WEIGHT * likes_look * likes_text
    logit = AFFINITY_SCALE * affinity + STYLE_WEIGHT * style[item] + quirk[item] + 0.3 * (channel == 2) - 1.3
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    history = earlier_histories(user, day, item, label, cfg.max_history)
    split = np.where(day >= test_start, 2, np.where(day >= valid_start, 1, 0))
    item_train_interactions = np.bincount(item[split == 0], minlength=n_rows)
    cold = item_train_interactions[item] < cfg.cold_max_train

    def take(part: int) -> Split:
        chosen = split == part
        return Split(
            user=torch.from_numpy(user[chosen]),
            item=torch.from_numpy(item[chosen]),
            context=torch.from_numpy(channel[chosen, None]),
            history=torch.from_numpy(history[chosen]),
            label=torch.from_numpy(label[chosen]),
            cold=torch.from_numpy(cold[chosen]),
        )

    return RankingData(
        train=take(0),
        valid=take(1),
        test=take(2),
        n_users=n_users,
        context_cardinalities=(N_CHANNELS + 1,),
        store=store,
        item_train_interactions=item_train_interactions,
        inputs={"context": ["channel"], "numeric": [], "history": "earlier_days"},
    )
