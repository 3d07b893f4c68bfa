"""Cross-entropy with label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.utils.params import Interval, check_value


class CrossEntropyLabelSmooth(nn.Module):
    """Label-smoothed cross-entropy (Szegedy et al., "Rethinking the Inception
    Architecture", CVPR 2016, sec. 7): the target of class k is
    q_k = (1 - eps) * [k = y] + eps / K, and L = -sum_k q_k log p_k, averaged over the batch.
    ``epsilon=0`` is the plain cross-entropy. Re-ID uses eps = 0.1 (Luo et al. 2019).
    """

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        check_value("epsilon", epsilon, [Interval(float, 0, 1, closed="left")])
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        k = logits.size(1)
        q = torch.full_like(log_p, self.epsilon / k)
        q.scatter_(1, targets.long().unsqueeze(1), 1.0 - self.epsilon + self.epsilon / k)
        return -(q * log_p).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"
