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
import torch.nn.functional as F
from torch import nn

from em3.config import LoRAConfig
from em3.data.token_store import ItemContent
from em3.models.content import NO_GRAD_CHUNK, TokenContent

ADAPTER = "default"  # the history head's one LoRA adapter (peft's adapter name)


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
            inject_adapter_in_model(config, self.lora_head, adapter_name=ADAPTER)
            self.lora_dropout = lora.dropout
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
        if self.training and self.lora_dropout:  # dropout acts on the adapters' input: peft's own forward
            detached_base = {name: p.detach() for name, p in self.lora_head.named_parameters() if "lora_" not in name}
            return torch.func.functional_call(self.lora_head, detached_base, (fused,), strict=False)  # (N, E)
        return self._merged_lora_head(fused)

    def _merged_lora_head(self, x: torch.Tensor) -> torch.Tensor:
        """The LoRA head with each adapter's delta (peft's ``get_delta_weight``: scaling · B @ A) added to the
        detached base weight: one product over the N items a layer instead of three, the same function to rounding
        (without adapter dropout). Gradient reaches A and B through the delta only. (N, F) → (N, E)"""
        for layer in self.lora_head:
            if hasattr(layer, "get_delta_weight"):  # a peft LoRA layer (peft is imported only where LoRA is used)
                base = layer.get_base_layer()
                weight = base.weight.detach() + layer.get_delta_weight(ADAPTER)
                x = F.linear(x, weight, None if base.bias is None else base.bias.detach())
            else:
                x = layer(x)
        return x

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
