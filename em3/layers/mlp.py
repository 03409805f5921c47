"""A plain feed-forward stack."""

from collections.abc import Sequence

from torch import nn


class MLP(nn.Sequential):
    """Linear → GELU → Dropout for each hidden width, then an optional output layer (``out_bias``: with a bias)."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int | None = None,
        dropout: float = 0.0,
        out_bias: bool = True,
    ):
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout)]
            in_dim = width
        if out_dim is not None:
            layers.append(nn.Linear(in_dim, out_dim, bias=out_bias))
            in_dim = out_dim
        super().__init__(*layers)
        self.out_dim = in_dim
