"""The two ranking backbones EM3 is applied to (DESIGN §3): DIN (e-commerce style) and DCN-v2 (ads style).

Both take the same inputs: user (B, E), target item (B, D), history items (B, L, D) with mask (B, L), context
(B, C); and return click logits (B,).
"""

from __future__ import annotations

import torch
from torch import nn

from em3.config import ModelConfig
from em3.layers import MLP, CrossNetV2, TargetAttention


class DIN(nn.Module):
    """Target attention over the behaviour sequence, then an MLP over [user, target, interest, target ⊙ interest,
    context] (the explicit product spares the MLP from learning to multiply)."""

    def __init__(self, cfg: ModelConfig, user_dim: int, item_dim: int, context_dim: int):
        super().__init__()
        self.attention = TargetAttention(item_dim, cfg.attention_hidden, cfg.dropout)
        self.mlp = MLP(user_dim + 3 * item_dim + context_dim, cfg.mlp_hidden, out_dim=1, dropout=cfg.dropout)

    def forward(self, user, target, history, mask, context) -> torch.Tensor:
        interest = self.attention(target, history, mask)  # (B, D)
        features = [user, target, interest, target * interest, context]
        return self.mlp(torch.cat(features, dim=-1)).squeeze(-1)


class DCN(nn.Module):
    """DCN-v2, parallel form: a cross network and a deep MLP over [user, target, mean-pooled history, context]."""

    def __init__(self, cfg: ModelConfig, user_dim: int, item_dim: int, context_dim: int):
        super().__init__()
        in_dim = user_dim + 2 * item_dim + context_dim
        self.cross = CrossNetV2(in_dim, cfg.cross_layers)
        self.deep = MLP(in_dim, cfg.mlp_hidden, dropout=cfg.dropout)
        self.out = nn.Linear(in_dim + self.deep.out_dim, 1)

    def forward(self, user, target, history, mask, context) -> torch.Tensor:
        weights = mask.unsqueeze(-1).to(history.dtype)
        pooled = (history * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)
        x0 = torch.cat([user, target, pooled, context], dim=-1)
        return self.out(torch.cat([self.cross(x0), self.deep(x0)], dim=-1)).squeeze(-1)


BACKBONES: dict[str, type[nn.Module]] = {"din": DIN, "dcn": DCN}
