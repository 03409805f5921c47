"""AdamW with weight decay on weight matrices only (not on biases, norms or embedding tables), and its learning-rate
schedule: a linear warm-up, then constant or cosine decay."""

import math

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


def set_learning_rate(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Set every group's learning rate for optimiser step ``step`` (0-based) of ``total_steps`` and return it.

    A pure function of the step, so a resumed run continues the schedule exactly. Warm-up rises linearly over
    ``warmup_steps``; ``cosine`` then decays to ``min_lr_ratio`` × lr at ``total_steps``."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr
    if cfg.lr_schedule == "cosine":
        done = min(1.0, max(0, step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        lr *= cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * done))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
