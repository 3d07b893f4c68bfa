"""Mask reconstruction of MRDA (Zhang et al. 2023, sec. 2.2, eqs. 1-4; docs/papers.md section 3).

A body mask from the image alone, without a parser or pose model:

    M+ = || (x - min x) / (max x - min x) ||_2      (eq. 1, L2 norm over the channels)
    M- = 1 - M+                                     (eq. 2)
    x_M+ = M+ * x,   x_M- = M- * x                  (eqs. 3-4, spatial weighting)

min and max are taken per image over all its channels and pixels (the paper does not say;
this is our choice). As the formula is written, M+ lies in [0, sqrt(C)] (not clipped to
[0, 1]), so M- may be negative; training only uses x_M+. The transform acts on a batch of
(normalised) network inputs, so it runs on the device with the rest of the step.
"""

from __future__ import annotations

import torch


def body_mask(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """M+ [N, 1, H, W] of a batch ``x`` [N, C, H, W] (eq. 1)."""
    flat = x.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1, 1)
    xn = (x - lo) / (hi - lo).clamp_min(eps)
    return xn.pow(2).sum(1, keepdim=True).sqrt()


def background_mask(x: torch.Tensor) -> torch.Tensor:
    """M- = 1 - M+ [N, 1, H, W] (eq. 2)."""
    return 1.0 - body_mask(x)


def mask_reconstruct(x: torch.Tensor) -> torch.Tensor:
    """x_M+ = M+ * x [N, C, H, W], the reconstructed body region (eq. 3)."""
    return body_mask(x) * x
