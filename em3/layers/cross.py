"""DCN-v2 cross network: explicit bounded-degree feature crosses."""

import torch
from torch import nn


class CrossNetV2(nn.Module):
    """x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l, with full-rank W_l (Wang et al., 2021)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        # x0: (B, D) → (B, D)
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x
