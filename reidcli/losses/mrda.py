"""The cross-modality losses of MRDA (Zhang et al. 2023, sec. 2.5, eqs. 18-23; docs/papers.md
section 3).

The ID term (eq. 18) is `reidcli.losses.CrossEntropyLabelSmooth` with xi = 0.1. This module
adds the hetero-centre triplet loss (eqs. 19-20), the modality correlation consistency loss
(eqs. 21-22) and the region centre loss (eq. 7); the total is eq. 23,
L = L_id + L_hc,tri + L_mc + L_ac, each term weighted by an `MrdaOptions` field.
Modality 0 is visible (v), 1 infrared (r).
"""

from __future__ import annotations

import torch
from torch import nn

from reidcli.utils.errors import InputError


def modality_centres(feat: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor):
    """(ids [P], C^v [P, D], C^r [P, D]): per identity of the batch, the mean feature of its
    visible and of its infrared images (eq. 19). Every identity needs both modalities."""
    ids = torch.unique(labels)
    cv, cr, missing = [], [], []
    for i in ids:
        v = (labels == i) & (modality == 0)
        r = (labels == i) & (modality == 1)
        if not v.any() or not r.any():
            missing.append(int(i))
            continue
        cv.append(feat[v].mean(0))
        cr.append(feat[r].mean(0))
    if missing:
        raise InputError(f"identities {missing[:5]} of the batch lack a visible or an infrared image; "
                         "the MRDA losses need both (sample with the cross-modal P x K sampler)")
    return ids, torch.stack(cv), torch.stack(cr)


class HeteroCentreTriplet(nn.Module):
    """Hetero-centre triplet loss (seed eq. 20, after Liu et al., "Parameter sharing
    exploration and hetero-center triplet loss", Neurocomputing 2020):

        sum_i [rho + ||C_i^v - C_i^r|| - min_{n in {v,r}, j != i} ||C_i^v - C_j^n||]_+
      + sum_i [rho + ||C_i^r - C_i^v|| - min_{n in {v,r}, j != i} ||C_i^r - C_j^n||]_+

    with C the per-identity modality centres of the batch (eq. 19). The paper writes one
    hardest-negative term for both anchors; we take it per anchor centre, as Liu et al.
    ``reduction`` 'sum': summed over the identities as the paper writes it; 'mean': the mean
    over the 2P anchor centres, as Liu et al.'s code (``CenterTripletLoss``: a
    ``MarginRankingLoss``, mean reduction), 1/(2P) of the sum.
    """

    def __init__(self, margin: float = 0.3, reduction: str = "sum"):
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean'; got {reduction!r}")
        self.margin, self.reduction = margin, reduction

    def forward(self, feat: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        _, cv, cr = modality_centres(feat.float(), labels, modality)
        p = cv.shape[0]
        pos = (cv - cr).pow(2).sum(1).clamp_min(1e-12).sqrt()
        allc = torch.cat([cv, cr])  # [2P, D]
        other = ~torch.eye(p, dtype=torch.bool, device=feat.device).repeat(1, 2)  # j != i, both n
        loss = feat.new_zeros((), dtype=torch.float32)
        for anchor in (cv, cr):
            d = torch.cdist(anchor, allc).masked_fill(~other, float("inf"))
            loss = loss + torch.relu(self.margin + pos - d.min(1).values).sum()
        return loss / (2 * p) if self.reduction == "mean" else loss

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


def correlation(f: torch.Tensor) -> torch.Tensor:
    """G = F F^T / ||F F^T||_2 (seed eq. 21; Frobenius norm)."""
    g = f @ f.t()
    return g / g.norm().clamp_min(1e-12)


class ModalityCorrelationLoss(nn.Module):
    """Modality correlation consistency L_mc = ||G^v - G^r||_2 (seed eqs. 21-22), with F^v
    and F^r the visible and infrared features of the batch in the same identity order (the
    cross-modal sampler gives K of each per identity, so row i of both is identity y_i)."""

    def forward(self, feat: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        fv, fr = feat[modality == 0].float(), feat[modality == 1].float()
        if fv.shape[0] != fr.shape[0] or fv.shape[0] == 0:
            raise InputError(f"the batch has {fv.shape[0]} visible and {fr.shape[0]} infrared images; "
                             "the correlation loss needs as many of each (cross-modal P x K sampler)")
        return (correlation(fv) - correlation(fr)).norm()


class RegionCentreLoss(nn.Module):
    """Region centre loss on the stage-1 feature maps (seed eq. 7):

        L_ac = mean_i ||f_i - f_i(M+)||_2 + ||C^v - C^r||_2 summed over identities

    The first term pulls each image's pooled stage-1 feature (average over H, W) towards
    that of its mask-reconstructed copy x_M+ (visible and infrared alike: the paper's first
    two sums). The modality term pulls, per identity, the visible centre of the original
    stage-1 features towards the infrared one (the paper pairs visible and infrared images;
    unpaired data only has identities in common, so we pair centres). Averaged over images
    for the first term and over identities for the second (the paper sums).
    """

    def forward(self, stage1: torch.Tensor, stage1_masked: torch.Tensor, labels: torch.Tensor,
                modality: torch.Tensor) -> torch.Tensor:
        a = stage1.float().mean((2, 3))
        b = stage1_masked.float().mean((2, 3))
        mask_term = (a - b).norm(dim=1).mean()
        _, cv, cr = modality_centres(a, labels, modality)
        return mask_term + (cv - cr).norm(dim=1).mean()
