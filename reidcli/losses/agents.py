"""Reference agent learning of MAR (Yu et al., "Unsupervised Person Re-identification by
Soft Multilabel Learning", CVPR 2019, sec. 3.4; docs/papers.md section 2):
L_RAL = L_AL + beta * L_RJ, with features and agents unit-norm (the public code renormalises
both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AgentLoss(nn.Module):
    """Agent learning, MAR eq. 7: the cross-entropy of each labelled reference image z over
    the agents, L_AL = -log softmax_k(s a_k^T f(z))[y], with the public code's scale s."""

    def __init__(self, scale: float = 30.0):
        super().__init__()
        self.scale = scale

    def forward(self, feat: torch.Tensor, agents: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.scale * agent_similarity(feat, agents), labels)


def agent_similarity(feat: torch.Tensor, agents: torch.Tensor) -> torch.Tensor:
    """[B, Np] cosine similarity a_k^T f of unit-norm features and agents."""
    return F.normalize(feat.float(), dim=1) @ F.normalize(agents.float(), dim=1).t()


class RJLoss(nn.Module):
    """Rejection (joint embedding) loss, MAR eq. 8 as the public code computes it, with
    d_ik = |f_i - a_k|^2 on unit-norm vectors and margin m:

    * each reference image z_i of identity y_i: a pull term d_{i,y_i}, and, when any other
      agent lies within the margin, the mean of [m - d_ik]_+ over those agents (k != y_i);
    * each unlabelled image x_j: when any agent lies within the margin, the mean of
      [m - d_jk]_+ over those agents (the "rejection": x_j is no reference identity);

    L_RJ = the mean of all these terms. The agents are fixed targets here (the method
    passes them detached, as the public code does); they move through `AgentLoss` only.
    """

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, ref_feat: torch.Tensor, agents: torch.Tensor, labels: torch.Tensor,
                target_feat: torch.Tensor) -> torch.Tensor:
        a = F.normalize(agents.float(), dim=1)
        d_ref = torch.cdist(F.normalize(ref_feat.float(), dim=1), a).pow(2)
        d_tgt = torch.cdist(F.normalize(target_feat.float(), dim=1), a).pow(2)
        own = F.one_hot(labels, a.shape[0]).bool()
        pull = d_ref[own]
        push_ref = self._push(d_ref, ~own)
        push_tgt = self._push(d_tgt, torch.ones_like(d_tgt, dtype=torch.bool))
        return torch.cat([pull, push_ref, push_tgt]).mean()

    def _push(self, d: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Per row with an allowed agent inside the margin: the mean hinge over those agents."""
        near = allowed & (d < self.margin)
        hinge = (self.margin - d).clamp_min(0) * near
        rows = near.any(1)
        return hinge.sum(1)[rows] / near.sum(1)[rows]
