"""The content side of the user-behaviour sequence, where EM3 keeps long histories affordable (DESIGN §1).

The target item goes through the fully trainable content tower. History items use the *same* tower in one of
three modes:

- ``full``: with gradient, like the target (memory and compute grow with the history length);
- ``frozen``: without gradient (no activations kept);
- ``lora``: the fusion without gradient, and the content head as a frozen copy of the target's head (same base
  weights, shared, receiving no gradient from this branch) plus trainable rank-r LoRA deltas (``peft``).

In ``frozen`` and ``lora`` modes with ``cache_every`` > 0, training reads the no-gradient fusion of history items
from the tower's per-item cache (em3.models.content_cache), refreshed every ``cache_every`` steps, so a step fuses
its target items and, with the read-through cache, only those history items whose entry is missing or stale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from em3.config import LoRAConfig
from em3.data.token_store import ItemContent
from em3.models.content import NO_GRAD_CHUNK, TokenContent


class HistoryContent(nn.Module):
    def __init__(self, tower: TokenContent, mode: str, lora: LoRAConfig, cache_every: int = 0):
        super().__init__()
        self.mode = mode
        self.tower = [tower]  # the target's tower, held without registering it twice
        self.cache_every = 0 if mode == "full" else cache_every  # steps between refreshes; 0: no cache in training
        if mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            # A second container over the same Linear modules; peft wraps them there, leaving the target's head bare.
            self.lora_head = nn.Sequential(*tower.head)
            targets = [name for name, module in self.lora_head.named_children() if isinstance(module, nn.Linear)]
            config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets)
            inject_adapter_in_model(config, self.lora_head)
            tower.head.requires_grad_(True)  # peft froze the shared base; the target side still trains it

    def forward(self, items: torch.Tensor, content: ItemContent | None) -> torch.Tensor:
        """Content embeddings (N, E) of the item rows ``items`` (N,); ``content`` None: read the tower's cache."""
        tower = self.tower[0]
        if self.mode == "full":
            return tower.head(tower.fused(items, content))
        # (N, F): from the cache, or each item through the fusion without gradient
        fused = tower.fused(items, None) if content is None else _chunked_no_grad(tower.fuse, content)
        if self.mode == "frozen":
            with torch.no_grad():
                return tower.head(fused)
        detached_base = {name: p.detach() for name, p in self.lora_head.named_parameters() if "lora_" not in name}
        return torch.func.functional_call(self.lora_head, detached_base, (fused,), strict=False)  # (N, E)

    def trainable_parameters(self) -> int:
        """Parameters that receive gradient through the history branch."""
        if self.mode == "full":
            return sum(p.numel() for p in self.tower[0].parameters())
        if self.mode == "lora":
            return sum(p.numel() for name, p in self.lora_head.named_parameters() if "lora_" in name)
        return 0


@torch.no_grad()
def _chunked_no_grad(encode: Callable[[ItemContent], torch.Tensor], content: ItemContent) -> torch.Tensor:
    """``encode`` over slices of the items: the temporary buffers of one huge call dominated peak memory."""
    n = content.pooled.shape[0]
    return torch.cat([encode(content[start : start + NO_GRAD_CHUNK]) for start in range(0, max(n, 1), NO_GRAD_CHUNK)])
