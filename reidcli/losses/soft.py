"""Soft (teacher-supervised) losses of Mutual Mean-Teaching (Ge, Chen & Li, "Mutual
Mean-Teaching: Pseudo Label Refinery for Unsupervised Domain Adaptation on Person
Re-identification", ICLR 2020)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.losses.distance import euclidean_dist


class SoftEntropy(nn.Module):
    """Soft cross-entropy, MMT eq. 8: L_sid = -1/N sum_i sum_k q_ik log p_ik, where
    p = softmax(student logits) and q = softmax(teacher logits), the teacher being the
    other network's mean net (no gradient flows into it)."""

    def forward(self, logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        q = F.softmax(teacher_logits.detach().float(), dim=1)
        return -(q * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def _hardest(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each anchor's farthest positive and closest negative."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    pos = dist.masked_fill(~same, float("-inf")).argmax(dim=1)
    neg = dist.masked_fill(same, float("inf")).argmin(dim=1)
    return pos, neg


class SoftTripletLoss(nn.Module):
    """Softmax-triplet loss, MMT eqs. 9-11. With the batch-hard positive p and negative n
    of anchor i (mined on the student's distances),

        T_i = exp(||f_i - f_n||) / (exp(||f_i - f_p||) + exp(||f_i - f_n||))

    Without ``teacher_feats`` the target is 1: L = -1/N sum_i log T_i (eq. 9, hard
    pseudo-labels). With them, the target q_i is the teacher's T_i at the same (p, n)
    indices (detached) and L = 1/N sum_i BCE(T_i, q_i) (eqs. 10-11). Anchors without a
    negative in the batch are skipped.
    """

    def __init__(self, normalize_feature: bool = False):
        super().__init__()
        self.normalize_feature = normalize_feature

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return F.normalize(x, dim=1) if self.normalize_feature else x

    def forward(
        self, feats: torch.Tensor, labels: torch.Tensor, teacher_feats: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        feats = self._prep(feats)
        dist = euclidean_dist(feats, feats)
        pos, neg = _hardest(dist, labels)
        valid = (labels.unsqueeze(0) != labels.unsqueeze(1)).any(dim=1)
        if not valid.any():
            return feats.sum() * 0.0
        idx = torch.arange(len(feats), device=feats.device)
        pair = torch.stack([dist[idx, pos], dist[idx, neg]], dim=1)[valid]
        log_t = F.log_softmax(pair, dim=1)  # column 1 is log T_i, column 0 log(1 - T_i)
        if teacher_feats is None:
            return -log_t[:, 1].mean()
        with torch.no_grad():
            t = self._prep(teacher_feats.detach())
            td = euclidean_dist(t, t)
            q = F.softmax(torch.stack([td[idx, pos], td[idx, neg]], dim=1)[valid], dim=1)
        return -(q * log_t).sum(dim=1).mean()
