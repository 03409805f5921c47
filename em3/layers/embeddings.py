"""Embeddings of categorical fields (context features); index 0 of every field means unknown."""

from collections.abc import Sequence

import torch
from torch import nn


class FieldEmbeddings(nn.Module):
    """One embedding table per categorical field; outputs are concatenated."""

    def __init__(self, cardinalities: Sequence[int], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, dim, padding_idx=0) for n in cardinalities)
        self.out_dim = dim * len(cardinalities)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        # fields: (B, F) int → (B, F * dim)
        if not self.tables:
            return fields.new_zeros(fields.shape[0], 0, dtype=torch.float32)
        return torch.cat([table(fields[:, f]) for f, table in enumerate(self.tables)], dim=-1)
