"""Item content towers: from a batch of item content to one content embedding per item."""

from __future__ import annotations

import torch
from torch import nn

from em3.config import ModelConfig
from em3.data.token_store import ItemContent
from em3.layers import FQFormer, MeanFusion


class PooledContent(nn.Module):
    """``two_stage``: frozen pooled image+text features through a trainable projection."""

    def __init__(self, pooled_dim: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(pooled_dim, embed_dim)

    def forward(self, content: ItemContent) -> torch.Tensor:
        return self.proj(content.pooled)  # (N, E)


class TokenContent(nn.Module):
    """``em3``: fusion of the item's image and text tokens (FQ-Former, or mean pooling as the ablation) → head."""

    def __init__(self, image_dim: int, text_dim: int, cfg: ModelConfig):
        super().__init__()
        fq = cfg.fqformer
        dims = (image_dim, text_dim)
        if cfg.fusion == "fqformer":
            self.fusion: nn.Module = FQFormer(dims, fq.d_model, fq.n_queries, fq.n_layers, fq.n_heads, fq.dropout)
        else:
            self.fusion = MeanFusion(dims, fq.d_model)
        self.head = nn.Sequential(
            nn.Linear(self.fusion.out_dim, cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )

    def fuse(self, content: ItemContent) -> torch.Tensor:
        tokens = (content.image_tokens, content.text_tokens)
        return self.fusion(tokens, (content.image_mask, content.text_mask))  # (N, fusion.out_dim)

    def forward(self, content: ItemContent) -> torch.Tensor:
        return self.head(self.fuse(content))  # (N, E)
