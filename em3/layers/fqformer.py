"""Fusion of an item's modality tokens into a fixed-length vector.

``FQFormer`` (EM3's Fusion-Q-Former): learnable query tokens and the tokens of every modality, each projected to
width d plus a modality-type embedding, pass through self-attention layers *together* (not BLIP-2's
cross-attention). The query outputs, flattened, are the fused item vector. Padding tokens and missing modalities are
masked out of attention, and their projected values are zeroed, so that whatever a store holds there (zeros,
garbage, even NaN) never reaches the output; the queries are always present, so an item without any content still
gets a vector.

``MeanFusion`` is the ablation without the FQ-Former: masked mean of each modality's projected tokens.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention with a query bias only: a key bias shifts every score of a query alike (softmax
    ignores it, so it would get no true gradient), and a value bias passes through the weights, which sum to one,
    into ``proj``'s bias. Dropping both loses nothing and leaves no parameter that only drifts with rounding."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.query_bias = nn.Parameter(torch.zeros(d_model))
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
        # x: (N, S, d), allowed: (N, 1, S) for every position alike, or one row per position from the first on (at
        # least S_out rows), True = may attend to that key
        # → (N, S_out, d) for the first n_out positions (all: None)
        n, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)  # 3×(N, S, d)
        q = q[:, :n_out] + self.query_bias  # (N, S_out, d)
        q, k, v = (t.reshape(n, -1, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        # q: (N, h, S_out, dh), k, v: (N, h, S, dh)
        attn_mask = allowed[:, None, :n_out]  # (N, 1, 1 or S_out, S), the same for every head
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)  # (N, h, S_out, dh)
        return self.proj(y.transpose(1, 2).reshape(n, -1, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, n_out: int | None = None) -> torch.Tensor:
        # (N, S, d) → (N, S_out, d): the first n_out positions (all: None) attend to the keys ``allowed`` gives them
        x = x[:, :n_out] + self.attn(self.norm1(x), allowed, n_out)
        return x + self.ffn(self.norm2(x))


class FQFormer(nn.Module):
    """``modality_queries``: besides the shared queries, one query per modality that attends only to that
    modality's tokens and itself. Its output is a slot per modality that stays in place whatever else the item
    has (a shared query's output is a softmax mixture: a text's tokens take the weight that the photo had), and a
    learned stand-in when the modality is missing (it then attends to itself alone)."""

    def __init__(
        self,
        modality_dims: Sequence[int],
        d_model: int = 64,
        n_queries: int = 2,
        n_layers: int = 1,
        n_heads: int = 4,
        dropout: float = 0.0,
        modality_queries: bool = False,
    ):
        super().__init__()
        n_slots = n_queries + (len(modality_dims) if modality_queries else 0)
        self.n_shared = n_queries
        self.queries = nn.Parameter(torch.randn(n_slots, d_model) * 0.02)  # shared queries, then one per modality
        self.modality_proj = nn.ModuleList(nn.Linear(dim, d_model) for dim in modality_dims)
        self.type_embed = nn.Embedding(1 + len(modality_dims), d_model)  # type 0 = query, 1.. = modalities
        nn.init.normal_(self.type_embed.weight, std=0.02)  # small, so item content dominates the query outputs
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = n_slots * d_model

    def forward(self, tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
        # tokens[m]: (N, T_m, d_m), masks[m]: (N, T_m) True = real token → (N, n_slots * d_model)
        n = tokens[0].shape[0]
        queries = (self.queries + self.type_embed.weight[0]).expand(n, -1, -1)  # (N, Q, d)
        parts = [queries] + [
            masked_projection(proj, x, mask) + self.type_embed.weight[m + 1]
            for m, (proj, x, mask) in enumerate(zip(self.modality_proj, tokens, masks, strict=True))
        ]
        x = torch.cat(parts, dim=1)  # (N, Q + ΣT_m, d)
        n_queries = queries.shape[1]
        allowed = self._attention_mask(masks, n_queries)  # (N, 1 or S, S)
        for block in self.blocks[:-1]:
            x = block(x, allowed)
        # only the query outputs are read: the last block computes those alone (half the work with one layer)
        x = self.blocks[-1](x, allowed, n_queries)  # (N, Q, d)
        return self.norm(x).flatten(1)  # (N, Q * d)

    def _attention_mask(self, masks: Sequence[torch.Tensor], n_queries: int) -> torch.Tensor:
        """(N, 1, S): every position sees the kept tokens and the queries. With modality queries, one row per query
        (N, Q, S), where a modality's query sees its modality's kept tokens and itself only, followed by the token
        positions' rows (N, S, S in all) only when earlier blocks compute those positions."""
        n = masks[0].shape[0]
        keep = torch.cat([masks[0].new_ones(n, n_queries), *masks], dim=1)  # (N, S)
        if n_queries == self.n_shared:
            return keep[:, None, :]
        rows = keep[:, None, :].repeat(1, n_queries, 1)  # (N, Q, S)
        start = n_queries
        for m, mask in enumerate(masks):
            row = self.n_shared + m
            rows[:, row, :] = False
            rows[:, row, row] = True
            rows[:, row, start : start + mask.shape[1]] = mask
            start += mask.shape[1]
        if len(self.blocks) == 1:  # the last block computes the query positions only
            return rows
        return torch.cat([rows, keep[:, None, :].expand(-1, keep.shape[1] - n_queries, -1)], dim=1)


class MeanFusion(nn.Module):
    def __init__(self, modality_dims: Sequence[int], d_model: int = 64):
        super().__init__()
        self.modality_proj = nn.ModuleList(nn.Linear(dim, d_model) for dim in modality_dims)
        self.out_dim = len(modality_dims) * d_model

    def forward(self, tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
        # → (N, M * d): per modality the masked mean of projected tokens, zeros when the modality is missing
        means = []
        for proj, x, mask in zip(self.modality_proj, tokens, masks, strict=False):
            count = mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)  # (N, 1)
            means.append(masked_projection(proj, x, mask).sum(1) / count)
        return torch.cat(means, dim=-1)


def masked_projection(proj: nn.Linear, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``proj(x)`` (N, T, d) with masked tokens set to exactly zero (``masked_fill``, not a product: 0 × NaN is NaN)."""
    return proj(x).masked_fill(~mask.unsqueeze(-1), 0.0)
