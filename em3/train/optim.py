"""AdamW with weight decay on weight matrices only (not on biases, norms or embedding tables), optionally with the
ID tables updated row by row, and the learning-rate schedule: a linear warm-up, then constant or cosine decay."""

import math
from collections.abc import Iterable

import torch
from torch import nn

from em3.config import TrainConfig

NO_DECAY_TYPES = (nn.Embedding, nn.LayerNorm)


class RowwiseTables:
    """``train.id_table_updates: rows``: AdamW for every dense parameter and lazy Adam (``torch.optim.SparseAdam``)
    for the user and item ID tables, whose gradients are then sparse: a step reads and updates only the rows its
    batch holds, so its cost is set by the batch, not by the number of users or items (dense AdamW writes every row
    of every table each step, and rows the batch never read still drift with their momentum)."""

    def __init__(self, dense: torch.optim.AdamW, rows: torch.optim.SparseAdam):
        self.dense, self.rows = dense, rows

    @property
    def param_groups(self) -> list[dict]:
        return self.dense.param_groups + self.rows.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.rows.zero_grad(set_to_none)

    def step(self) -> None:
        self.dense.step()
        self.rows.step()

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict(), "rows": self.rows.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.dense.load_state_dict(state["dense"])
        self.rows.load_state_dict(state["rows"])


Optimizer = torch.optim.AdamW | RowwiseTables


def load_optimizer_state(optimizer: Optimizer, state: dict, source: str) -> None:
    """Restore ``optimizer`` from ``state`` (read from ``source``), refusing a state written with the other
    ``train.id_table_updates`` (their layouts differ: one AdamW, or AdamW beside SparseAdam)."""
    written = "rows" if set(state) == {"dense", "rows"} else "dense"
    wanted = "rows" if isinstance(optimizer, RowwiseTables) else "dense"
    if written != wanted:
        how = "row-wise" if written == "rows" else "densely"
        setting = f"train.id_table_updates: {written}"
        raise ValueError(f"{source}: its optimiser updated the ID tables {how}: resume it with {setting}")
    optimizer.load_state_dict(state)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> Optimizer:
    """The optimiser of ``model``; with ``cfg.id_table_updates == "rows"`` it also switches the model's ID tables
    (``model.id_tables``) to sparse gradients, which ``RowwiseTables`` updates row by row."""
    tables = list(model.id_tables) if cfg.id_table_updates == "rows" else []
    table_ids = {id(table.weight) for table in tables}
    no_decay_ids = {
        id(p) for module in model.modules() if isinstance(module, NO_DECAY_TYPES) for p in module.parameters(False)
    }
    decay, no_decay, seen = [], [], set(table_ids)
    for p in model.parameters():  # de-duplicated: shared modules appear once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or id(p) in no_decay_ids else decay).append(p)
    dense = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    if not tables:
        return dense
    for table in tables:
        table.sparse = True
    return RowwiseTables(dense, torch.optim.SparseAdam([table.weight for table in tables], lr=cfg.lr))


@torch.no_grad()
def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale all gradients, sparse ones included, so that their global L2 norm is at most ``max_norm`` (as
    ``torch.nn.utils.clip_grad_norm_``, which rejects sparse gradients); returns the norm before clipping."""
    params = [p for p in dict.fromkeys(parameters) if p.grad is not None]
    if not any(p.grad.is_sparse for p in params):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()  # repeated rows summed: the norm of the gradient, not of its pieces
    values = [p.grad._values() if p.grad.is_sparse else p.grad for p in params]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v.float()) for v in values]))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for v in values:
        v.mul_(scale.to(v.dtype))
    return norm


def set_learning_rate(optimizer: Optimizer, cfg: TrainConfig, step: int, total_steps: int) -> float:
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
