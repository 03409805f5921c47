"""AdamW with weight decay on weight matrices only (not on biases, norms or embedding tables)."""

import torch
from torch import nn

from em3.config import TrainConfig

NO_DECAY_TYPES = (nn.Embedding, nn.LayerNorm)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    no_decay_ids = {
        id(p) for module in model.modules() if isinstance(module, NO_DECAY_TYPES) for p in module.parameters(False)
    }
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():  # de-duplicated: shared modules appear once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or id(p) in no_decay_ids else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
