"""Content-ID-Contrastive (CIC) learning: align an item's content embedding with its ID embedding."""

import torch
import torch.nn.functional as F


def cic_loss(content: torch.Tensor, ids: torch.Tensor, item_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between content and ID embeddings of the items of a batch.

    content, ids: (B, D) outputs of the two projection heads; item_ids: (B,). Both sides are L2-normalised; the
    positive of row i is column i, negatives are the other rows, except rows holding the same item (duplicates are
    masked out, not treated as negatives).
    """
    c = F.normalize(content, dim=-1)
    i = F.normalize(ids, dim=-1)
    logits = c @ i.T / temperature  # (B, B)
    same_item = item_ids[:, None] == item_ids[None, :]
    duplicate = same_item & ~torch.eye(len(item_ids), dtype=torch.bool, device=item_ids.device)
    logits = logits.masked_fill(duplicate, float("-inf"))
    target = torch.arange(len(item_ids), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
