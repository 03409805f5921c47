"""DIN target attention: the target item weighs each item of the user's behaviour sequence."""

from collections.abc import Sequence

import torch
from torch import nn

from em3.layers.mlp import MLP


class TargetAttention(nn.Module):
    """Score each history item by an MLP over [q, k, q - k, q * k]; return the weighted sum of the history.

    Weights are a masked softmax over the sequence; a user with no history gets a zero vector. The score layer has
    no output bias: softmax ignores a shift, so such a bias would get no true gradient and only drift with rounding.
    """

    def __init__(self, dim: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        self.score = MLP(4 * dim, hidden, out_dim=1, dropout=dropout, out_bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # query: (B, D), keys: (B, L, D), mask: (B, L) True = real item
        q = query.unsqueeze(1).expand_as(keys)
        scores = self.score(torch.cat([q, keys, q - keys, q * keys], dim=-1)).squeeze(-1)  # (B, L)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows without history → all zeros
        return torch.einsum("bl,bld->bd", weights, keys)  # (B, D)
