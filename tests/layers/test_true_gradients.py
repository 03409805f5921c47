"""Every parameter of the attention layers has a true gradient.

A parameter the output does not depend on (a bias that softmax ignores) gets only rounding noise as gradient; Adam
scales that noise up to full steps, so such a parameter drifts differently on every CPU and in every data-parallel
layout. In float64 a true gradient of these random, unit-scale inputs is far above 1e-12 in every element, while
rounding noise stays near 1e-16: the threshold separates the two by orders of magnitude either way.
"""

import pytest
import torch

from em3.layers import FQFormer
from em3.layers.attention import TargetAttention

TRUE_GRADIENT = 1e-12


def assert_every_element_has_a_gradient(module: torch.nn.Module, loss: torch.Tensor) -> None:
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} gets no gradient"
        smallest = p.grad.abs().min().item()
        assert smallest > TRUE_GRADIENT, f"{name} has elements without a true gradient (|grad| = {smallest:.1e})"


def test_target_attention():
    torch.manual_seed(0)
    layer = TargetAttention(dim=8, hidden=[16, 8]).double()
    query, keys = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 5, 8, dtype=torch.float64)
    mask = torch.rand(6, 5) < 0.7
    mask[:, 0] = True  # every user has some history (a user without one has a zero output and no gradient)
    out = layer(query, keys, mask)  # (6, 8)
    assert_every_element_has_a_gradient(layer, (out * torch.randn_like(out)).sum())


@pytest.mark.parametrize("modality_queries", [False, True])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_fqformer(n_layers, modality_queries):
    torch.manual_seed(0)
    fq = FQFormer((12, 8), d_model=16, n_queries=2, n_layers=n_layers, n_heads=4, modality_queries=modality_queries)
    fq = fq.double()
    tokens = [torch.randn(5, 4, 12, dtype=torch.float64), torch.randn(5, 3, 8, dtype=torch.float64)]
    masks = [torch.ones(5, 4, dtype=torch.bool), torch.ones(5, 3, dtype=torch.bool)]
    out = fq(tokens, masks)  # (5, 32 or 64)
    assert_every_element_has_a_gradient(fq, (out * torch.randn_like(out)).sum())
