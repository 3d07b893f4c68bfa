"""Pairwise distances shared by the metric losses."""

from __future__ import annotations

import torch


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[M, D] x [N, D] -> [M, N] Euclidean distances, clamped so sqrt has a gradient at 0."""
    xx = x.pow(2).sum(1, keepdim=True)
    yy = y.pow(2).sum(1, keepdim=True).t()
    d2 = (xx + yy - 2.0 * x @ y.t()).clamp(min=1e-12)
    return d2.sqrt()
