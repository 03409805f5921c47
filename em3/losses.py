"""Losses over the items of a batch: Content-ID-Contrastive (CIC) learning, which aligns an item's content embedding
with its ID embedding; co-engagement, which pulls together the content embeddings of items that one user engaged
with in turn; and neighbourhood keeping, which keeps the frozen content's in-batch neighbourhoods in the content
embedding (the last two em3's additions beyond the paper: DESIGN §3 names co-engagement; docs/benchmarks.md says
why neighbourhood keeping joined it)."""

import torch
import torch.nn.functional as F


def paired_info_nce(
    left: torch.Tensor, right: torch.Tensor, left_items: torch.Tensor, right_items: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows: the positive of ``left[i]`` is ``right[i]`` and the negatives are the
    other rows' vectors, except rows that share an item with row i (either side: duplicates are masked out, not
    treated as negatives).

    left, right: (P, D); left_items, right_items: (P,) the item of each vector. Both sides are L2-normalised.
    """
    logits = F.normalize(left, dim=-1) @ F.normalize(right, dim=-1).T / temperature  # (P, P)
    items = torch.stack([left_items, right_items], dim=1)  # (P, 2)
    shared = (items[:, None, :, None] == items[None, :, None, :]).flatten(2).any(-1)  # (P, P): rows i, j share one
    duplicate = shared & ~torch.eye(len(items), dtype=torch.bool, device=items.device)
    logits = logits.masked_fill(duplicate, float("-inf"))
    target = torch.arange(len(items), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def cic_loss(content: torch.Tensor, ids: torch.Tensor, item_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """CIC: the content and ID embeddings (B, D) of a batch's items (B,), each item's two views a positive pair."""
    return paired_info_nce(content, ids, item_ids, item_ids, temperature)


def coengagement_loss(
    content: torch.Tensor, partner: torch.Tensor, items: torch.Tensor, partner_items: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Co-engagement: the content embedding (P, D) of each engaged item (P,) and that of the item the same user
    engaged with just before it (P, D; items (P,)) form a positive pair. Fewer than two pairs: 0 (no negative)."""
    if len(items) < 2:
        return content.sum() * 0.0
    return paired_info_nce(content, partner, items, partner_items, temperature)


def neighbourhood_loss(content: torch.Tensor, frozen: torch.Tensor, temperature: float) -> torch.Tensor:
    """Keeps the frozen content's neighbourhoods: for each item with frozen content, the KL divergence from the
    softmax of its cosines to the batch's other such items in the frozen space (N, D_f; the target, no gradient) to
    the softmax of its cosines in the content embedding (N, D). 0 when they agree; fewer than 3 such items: 0."""
    has = frozen.norm(dim=-1) > 0
    content, frozen = content[has], frozen[has].float()
    n = len(content)
    if n < 3:
        return content.sum() * 0.0
    others = ~torch.eye(n, dtype=torch.bool, device=content.device)

    def cosines(vectors: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(vectors, dim=-1)
        return (unit @ unit.T)[others].view(n, n - 1) / temperature  # (N, N - 1): the item itself left out

    target = F.log_softmax(cosines(frozen.detach()), dim=-1)
    return F.kl_div(F.log_softmax(cosines(content), dim=-1), target, reduction="batchmean", log_target=True)
