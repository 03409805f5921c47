"""Checkpoints that resume exactly: model, optimiser, loop position and RNG state, loaded with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from em3.atomic import atomic_file
from em3.train.optim import Optimizer, load_optimizer_state


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file, then rename: a crash never leaves a complete-looking partial checkpoint."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: Optimizer, loop: dict) -> None:
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "buffers": _derived_buffers(model),
            "optimizer": optimizer.state_dict(),
            "loop": loop,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        path,
    )


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: Optimizer) -> dict:
    """Restore model, optimiser and RNG state in place; return the loop state."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    for name, value in state["buffers"].items():
        model.get_buffer(name).copy_(value)
    load_optimizer_state(optimizer, state["optimizer"], str(path))
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return state["loop"]


def _derived_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Non-persistent buffers (caches derived from the weights, left out of the saved weights), for exact resume."""
    persistent = model.state_dict().keys()
    return {name: buffer for name, buffer in model.named_buffers() if name not in persistent}
