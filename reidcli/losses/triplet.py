"""Batch-hard triplet loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.losses.distance import euclidean_dist
from reidcli.utils.params import Interval, check_value


def hard_example_mining(
    dist: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor: the farthest positive, the closest negative, and whether a negative exists.

    The anchor itself counts as a positive (distance ~0), so an identity with one image in
    the batch still gets a defined d_ap.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return d_ap, d_an, (~same).any(dim=1)


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss
    for Person Re-Identification", 2017, eq. 5):

        L_BH = 1/N sum_a [m + max_p D(a, p) - min_n D(a, n)]_+

    with Euclidean D over a P x K batch. ``soft_margin=True`` replaces [m + x]_+ by the
    soft-plus ln(1 + exp(x)) (their eq. 6). Anchors with no negative in the batch are
    skipped. ``normalize_feature`` L2-normalises the features first.
    """

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, normalize_feature: bool = False):
        super().__init__()
        if not soft_margin:
            check_value("margin", margin, [Interval(float, 0, None)])
        self.margin = margin
        self.soft_margin = soft_margin
        self.normalize_feature = normalize_feature

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        feats = feats.float()
        if self.normalize_feature:
            feats = F.normalize(feats, dim=1)
        d_ap, d_an, valid = hard_example_mining(euclidean_dist(feats, feats), labels)
        if not valid.any():
            return feats.sum() * 0.0  # every sample is one identity: no triplet exists
        x = d_ap[valid] - d_an[valid]
        loss = F.softplus(x) if self.soft_margin else F.relu(x + self.margin)
        return loss.mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, soft_margin={self.soft_margin}"
