"""Which torch device a ``*.device`` setting means (``train``, ``features``, ``evaluate`` and ``score`` alike)."""

from __future__ import annotations

import torch


def resolve_device(setting: str, key: str = "device") -> torch.device:
    """'auto' picks CUDA when visible; an explicit 'cuda' without a GPU is an error naming the setting ``key``
    (e.g. ``train.device``), not a silent CPU run."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{key} is 'cuda' but no CUDA device is visible (use 'auto' or 'cpu')")
    return torch.device(setting)
