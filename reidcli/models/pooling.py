"""Global pooling of a feature map [N, C, H, W] -> [N, C]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.utils.errors import ConfigError


class GeM(nn.Module):
    """Generalised-mean pooling (Radenovic et al., TPAMI 2018, eq. 1).

    f_c = (1/|X_c| sum_{x in X_c} x^p)^(1/p), with a learnable p (p=1: average,
    p -> inf: max). Inputs are clamped at ``eps`` so the power is defined.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        # float32 even under AMP: x^3 overflows float16 for activations above ~40
        return x.float().clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.2f}"


class AvgPool(nn.Module):
    """Global average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class AvgMaxPool(nn.Module):
    """Sum of global average and global max pooling (as in fast-reid's 'avgmaxpool');
    the combination used by the LSTM-branch paper (LSTM-UDA 2021) keeps the dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) + F.adaptive_max_pool2d(x, 1).flatten(1)


def build_pool(name: str, gem_p: float = 3.0) -> nn.Module:
    if name == "avg":
        return AvgPool()
    if name == "gem":
        return GeM(gem_p)
    if name == "avgmax":
        return AvgMaxPool()
    raise ConfigError(f"--pooling must be one of ('avg', 'gem', 'avgmax'); got {name!r}")
