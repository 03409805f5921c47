"""Item content towers: from a batch of item content to one content embedding per item."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from em3.config import ModelConfig
from em3.data.token_store import ItemContent, TokenStore
from em3.layers import FQFormer, MeanFusion
from em3.models.content_cache import CatalogueCache, ReadThroughCache

MODALITIES = ("image", "text")
NO_GRAD_CHUNK = 4096  # items encoded at a time without gradient (bench/speed.py: 0.12x the peak of one call)


def drop_modalities(
    content: ItemContent,
    rate: float,
    dims: tuple[int, int],
    generator: torch.Generator | None = None,
    text_share: float = 0.5,
) -> ItemContent:
    """Modality dropout: each item that has both modalities loses one of them with probability ``rate`` (its text
    with probability ``text_share``, else its image), as if the catalogue lacked it (its masks off, its slice of
    the pooled vector zero), so that a content tower learns every subset of its inputs. ``dims``: the pooled widths
    (image, text)."""
    both = content.present.all(-1)  # (N,)
    dropped = both & (torch.rand(both.shape, generator=generator).to(both.device) < rate)
    text_goes = torch.rand(both.shape, generator=generator).to(both.device) < text_share
    lose = torch.stack([dropped & ~text_goes, dropped & text_goes], dim=-1)  # (N, 2): modality m hidden
    keep_pooled = (~lose).repeat_interleave(torch.tensor(dims, device=lose.device), dim=-1)  # (N, d_img + d_txt)
    masks = {
        f"{name}_mask": None if (mask := getattr(content, f"{name}_mask")) is None else mask & ~lose[..., m, None]
        for m, name in enumerate(MODALITIES)
    }
    pooled = content.pooled.masked_fill(~keep_pooled, 0.0)
    return replace(content, pooled=pooled, present=content.present & ~lose, **masks)


def frozen_space(content: ItemContent, dims: tuple[int, int]) -> torch.Tensor:
    """(N, d_img + d_txt) the items' frozen content as material similarity reads it (DESIGN §2): each modality's pooled
    vector L2-normalised, a missing one zeros (em3.data.content_similarity.unit_concat for a batch)."""
    parts = content.pooled.float().split(dims, dim=-1)
    return torch.cat(
        [torch.nn.functional.normalize(part, dim=-1) * content.present[..., m, None] for m, part in enumerate(parts)],
        dim=-1,
    )


class PooledContent(nn.Module):
    """``two_stage``: frozen pooled image+text features through a trainable projection.

    An item without a modality gets a *learned* "missing" vector in that modality's place, not zeros: zeros would
    pin every such item to the projection's bias, the same point as a real vector that happens to be small, while
    a learned vector (a missing-indicator with its own weights) lets the click loss place "no photo" or "no text"
    where the data say. It starts at zero, so an untrained model treats a missing modality as zeros.

    With ``mlp`` (``model.pooled_projection: mlp``, the ``two_stage_mlp`` baseline of DESIGN §3) the projection is
    followed by a GELU and a second linear layer: an MLP as deep and wide as em3's content head, so that a lead of
    em3 over it is token-level fusion trained end to end, not any non-linear projection.
    """

    def __init__(self, image_dim: int, text_dim: int, embed_dim: int, mlp: bool = False):
        super().__init__()
        self.dims = (image_dim, text_dim)
        present = [(m, d) for m, d in zip(MODALITIES, self.dims, strict=True) if d]
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m, d in present})
        self.proj = nn.Linear(image_dim + text_dim, embed_dim)
        self.head = nn.Sequential(nn.GELU(), nn.Linear(embed_dim, embed_dim)) if mlp else nn.Identity()

    def forward(self, content: ItemContent) -> torch.Tensor:
        # proj(missing modality's slice := its vector) = proj(pooled, zeros there as stored) + W_m · missing_m: the
        # same function, without a gradient through a copy of every item's pooled vector (3x slower on 5,000 items)
        out = self.proj(content.pooled)  # (N, E)
        weights = self.proj.weight.split(self.dims, dim=1)
        for m, name in enumerate(MODALITIES):
            if name in self.missing:
                absent = (~content.present[..., m : m + 1]).to(out.dtype)  # (N, 1)
                out = out + absent * (weights[m] @ self.missing[name])
        return self.head(out)


class TokenContent(nn.Module):
    """``em3``: fusion of the item's image and text tokens (FQ-Former, or mean pooling as the ablation) → head.

    With ``cache`` it also keeps a per-item cache of fused vectors (DESIGN §1's "per-item embedding cache",
    em3.models.content_cache), read wherever content is not given (history items in training, every item in
    prediction): the whole catalogue fused at each ``refresh``, or the items fused as they are read
    (``model.content_cache``).
    """

    def __init__(self, image_dim: int, text_dim: int, cfg: ModelConfig, n_items: int, cache: bool = False):
        super().__init__()
        fq = cfg.fqformer
        # modalities the store holds at all (width 0: absent from the whole catalogue, no part built for it)
        self.modalities = tuple(m for m, dim in zip(MODALITIES, (image_dim, text_dim), strict=True) if dim)
        self.dims, self.tokens = (image_dim, text_dim), cfg.content_tokens
        dims = tuple(dim for dim in (image_dim, text_dim) if dim)
        if cfg.fusion == "fqformer":
            self.fusion: nn.Module = FQFormer(
                dims, fq.d_model, fq.n_queries, fq.n_layers, fq.n_heads, fq.dropout, fq.modality_queries
            )
        else:
            self.fusion = MeanFusion(dims, fq.d_model)
        self.head = nn.Sequential(
            nn.Linear(self.fusion.out_dim, cfg.embed_dim), nn.GELU(), nn.Linear(cfg.embed_dim, cfg.embed_dim)
        )
        self.cache: CatalogueCache | ReadThroughCache | None = None
        if cache and cfg.content_cache == "catalogue":
            self.cache = CatalogueCache(n_items, self.fusion.out_dim)
        elif cache:
            self.cache = ReadThroughCache(n_items, self.fusion.out_dim, min(n_items, cfg.content_cache_items))

    @property
    def has_cache(self) -> bool:
        return self.cache is not None

    def fuse(self, content: ItemContent) -> torch.Tensor:
        """Each modality's tokens (DESIGN §1): its pooled vector as a summary token, its finer tokens, or both
        (``model.content_tokens``); a missing modality's are masked. → (N, fusion.out_dim)"""
        tokens, masks = [], []
        pooled = content.pooled.split(self.dims, dim=-1)
        for name in self.modalities:
            m = MODALITIES.index(name)
            summary, present = pooled[m].unsqueeze(-2), content.present[..., m : m + 1]  # (N, 1, d), (N, 1)
            fine, fine_mask = getattr(content, f"{name}_tokens"), getattr(content, f"{name}_mask")
            parts = {
                "summary": ([summary], [present]),
                "fine": ([fine], [fine_mask]),
                "both": ([summary, fine], [present, fine_mask]),
            }[self.tokens]
            tokens.append(torch.cat(parts[0], dim=-2))  # (N, T_m, d_m)
            masks.append(torch.cat(parts[1], dim=-1))
        return self.fusion(tokens, masks)

    def fused(self, items: torch.Tensor, content: ItemContent | None) -> torch.Tensor:
        """Fused vectors (N, F) of the item rows ``items`` (N,): from ``content``, or from the cache when None."""
        if content is not None:
            return self.fuse(content)
        if self.cache is None:
            raise RuntimeError("no item content and no cache: this model fuses the content its batches carry")
        return self.cache.read(items, self._fuse_rows)

    def forward(self, content: ItemContent) -> torch.Tensor:
        return self.head(self.fuse(content))  # (N, E)

    def refresh(self, store: TokenStore) -> None:
        """Mark the cache's entries stale, or fuse the catalogue anew (``model.content_cache``), unless neither the
        weights nor the store changed since the last refresh."""
        self.cache.refresh(store, list(self.parameters()), self._fuse_rows)

    @torch.no_grad()
    def _fuse_rows(self, rows: torch.Tensor, store: TokenStore) -> torch.Tensor:
        """The fused vectors (N, F) of store rows ``rows`` (N,) with the current weights, in eval mode (no dropout)
        and without gradient, a chunk at a time (the temporary buffers of one huge call dominate peak memory)."""
        was_training, device = self.training, next(self.parameters()).device
        self.eval()
        fused = []
        for start in range(0, len(rows), NO_GRAD_CHUNK):
            fused.append(self.fuse(store.gather(rows[start : start + NO_GRAD_CHUNK]).to(device)).float())
        self.train(was_training)
        return torch.cat(fused) if fused else torch.zeros(0, self.fusion.out_dim, device=device)
