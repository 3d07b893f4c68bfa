"""Centre loss."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, check_params

_POSITIVE = Interval(float, 0, None, closed="neither")


class CenterLoss(nn.Module):
    """Centre loss (Wen et al., "A Discriminative Feature Learning Approach for Deep Face
    Recognition", ECCV 2016, eq. 2), averaged over the batch:

        L_C = 1/(2N) sum_i ||x_i - c_{y_i}||^2

    The centres c_k are parameters with their own optimiser. As in Luo et al. (BoT, 2019)
    and Chen et al. 2022 (eq. 7), the total loss adds ``weight * L_C`` (weight 0.0035) and the centres
    move with SGD at ``lr`` 0.5 independently of that weight: call
    ``opt = loss.make_optimizer()`` once, then after ``backward()`` call
    ``loss.step_centers(opt)``, which undoes the weight on the centre gradients (so each
    centre moves by lr * dL_C/dc, a batch-averaged form of Wen et al.'s eq. 4) and steps. Keep the centres out of the
    network optimiser (they are not model parameters).
    """

    def __init__(self, num_classes: int, feat_dim: int, weight: float = 0.0035, lr: float = 0.5):
        super().__init__()
        if num_classes <= 0 or feat_dim <= 0:
            raise ConfigError(
                f"centre loss needs num_classes and feat_dim > 0; got {num_classes}, {feat_dim}"
            )
        check_params({"weight": weight, "lr": lr}, dict.fromkeys(("weight", "lr"), [_POSITIVE]))
        self.weight, self.lr = weight, lr
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Unweighted L_C; multiply by ``self.weight`` when adding it to the total."""
        if feats.ndim != 2 or feats.size(1) != self.centers.size(1):
            raise ConfigError(
                f"centre loss has {self.centers.size(1)}-d centres but the feature is "
                f"{tuple(feats.shape[1:])}; size it from the training feature out['feat'] "
                "(e.g. `reidcli.models.rbnet.train_feat_dim`), not the inference width"
            )
        labels = labels.long()
        if labels.min() < 0 or labels.max() >= self.centers.size(0):
            raise ConfigError(
                f"centre loss has {self.centers.size(0)} classes but got label "
                f"{int(labels.max() if labels.max() >= 0 else labels.min())}"
            )
        diff = feats.float() - self.centers[labels]
        return 0.5 * diff.pow(2).sum(dim=1).mean()

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def step_centers(self, optimizer: torch.optim.Optimizer) -> None:
        """Rescale the centre gradients by 1/weight, step, and zero them."""
        if self.centers.grad is not None:
            self.centers.grad.mul_(1.0 / self.weight)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def reset(self, centers: Optional[torch.Tensor] = None, num_classes: Optional[int] = None) -> None:
        """New centres (e.g. cluster means for ULA templates, Chen et al. 2022) or random ones.
        Build a new optimiser afterwards."""
        if centers is None:
            k = num_classes or self.centers.size(0)
            centers = torch.randn(k, self.centers.size(1))
        if centers.ndim != 2 or centers.size(1) != self.centers.size(1):
            raise ConfigError(
                f"centres must be [K, {self.centers.size(1)}]; got {tuple(centers.shape)}"
            )
        self.centers = nn.Parameter(centers.detach().clone().to(self.centers))

    def extra_repr(self) -> str:
        k, d = self.centers.shape
        return f"num_classes={k}, feat_dim={d}, weight={self.weight}, lr={self.lr}"
