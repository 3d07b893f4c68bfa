"""Domain connectedness: a batch-hard triplet over labelled source images and target images
in which every source-target pair is a negative (LSTM-UDA 2021: LSTM local branch +
StarGAN camera style, sec. 2.4, eq. 3; docs/papers.md section 5).

    L_D = L_T({x_s} u {x_t} u {x_t*})

with L_T the batch-hard triplet of the paper's eq. 2 (Hermans et al. 2017, eq. 5):

    L_T = 1/N sum_a [m + max_p ||f_a - f_p||_2 - min_n ||f_a - f_n||_2]_+

Positives of a source anchor: the source images of its identity. Positives of a target
anchor: the target images of its class (an image and its camera-styled versions, or its
pseudo-label). Negatives: every other image of the union, so each source image is a
negative of each target image and the other way round ("different domains hold different
identities", the paper's prior).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.losses.distance import euclidean_dist
from reidcli.utils.params import Interval, check_value


def domain_positive_mask(ys: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
    """[ns + nt, ns + nt] bool: True where two images of the union are positives (same
    domain and same label); every source-target pair is False (a negative)."""
    y = torch.cat([ys, yt])
    dom = torch.cat([torch.zeros_like(ys), torch.ones_like(yt)])
    return (y[:, None] == y[None, :]) & (dom[:, None] == dom[None, :])


class DomainConnectedness(nn.Module):
    """``forward(feat_s, ys, feat_t, yt)``: L_D of LSTM-UDA 2021, eq. 3 (module docstring), the mean
    over every anchor of the union (each anchor has a negative: the other domain)."""

    def __init__(self, margin: float = 0.5):
        super().__init__()
        check_value("margin", margin, [Interval(float, 0, None)])
        self.margin = margin

    def forward(self, feat_s: torch.Tensor, ys: torch.Tensor, feat_t: torch.Tensor,
                yt: torch.Tensor) -> torch.Tensor:
        f = torch.cat([feat_s, feat_t]).float()
        same = domain_positive_mask(ys, yt)
        dist = euclidean_dist(f, f)
        d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
        d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
        return F.relu(d_ap - d_an + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
