"""Soft multilabel learning of MAR (Yu, Zheng, Li, Xiang & Gong, "Unsupervised Person
Re-identification by Soft Multilabel Learning", CVPR 2019, as Zhang et al. 2020 use it;
docs/papers.md section 2).

An unlabelled image is described by its similarity to the reference agents a_1..a_Np (one
per identity of a labelled reference set), its *soft multilabel* (MAR eq. 1 with the
public code's scale s = 30, features and agents both unit-norm):

    y_k(x) = exp(s a_k^T f(x)) / sum_j exp(s a_j^T f(x))

`label_agreement` (eq. 2), `MDLLoss` (eq. 3 with the mining of sec. 3.2) and `CMLLoss`
(eq. 5/6, the simplified 2-Wasserstein distance) work on these labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.losses.agents import agent_similarity


class SoftMultilabel(nn.Module):
    """y = softmax(s * normalize(f) normalize(A)^T) over the agents (MAR eq. 1, s = ``scale``);
    ``log=True`` gives log y (computed stably, for the CML loss)."""

    def __init__(self, scale: float = 30.0):
        super().__init__()
        self.scale = scale

    def forward(self, feat: torch.Tensor, agents: torch.Tensor, log: bool = False) -> torch.Tensor:
        sim = agent_similarity(feat, agents)
        return (F.log_softmax if log else F.softmax)(self.scale * sim, dim=1)


def label_agreement(y: torch.Tensor) -> torch.Tensor:
    """[B, B] label agreement A(y_i, y_j) = sum_k min(y_ik, y_jk) (MAR eq. 2), which equals
    1 - |y_i - y_j|_1 / 2 for soft multilabels (each sums to 1)."""
    return 1.0 - torch.cdist(y, y, p=1) / 2.0


def _upper_pairs(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.triu_indices(n, n, offset=1, device=device).unbind(0)


class MDLLoss(nn.Module):
    """Soft multilabel-guided discriminative embedding learning (MAR eq. 3):

        L_MDL = -log(P / (P + N)),  P = mean_{(i,j) in pos} exp(-|f_i - f_j|^2),
                                    N = mean_{(i,j) in neg} exp(-|f_i - f_j|^2)

    Mining (MAR sec. 3.2 and its public code): of the B(B-1)/2 pairs of the batch, the
    ``mining_ratio`` fraction (at least one) with the most similar features are kept; a kept
    pair is a positive if its agreement is >= T and a hard negative otherwise. T is the
    agreement reached by the top ``mining_ratio`` fraction of all pairs; MAR keeps it as a
    running average (``momentum`` 0.1 per batch; here started from the first batch).
    Without positives P = 1 and without negatives N = 0.5, as in the public code.
    ``multilabels`` may come from a memory (the method's running average per image).
    """

    def __init__(self, mining_ratio: float = 0.005, momentum: float = 0.1):
        super().__init__()
        self.mining_ratio, self.momentum = mining_ratio, momentum
        self.register_buffer("threshold", torch.tensor(float("nan")))

    def forward(self, feat: torch.Tensor, multilabels: torch.Tensor) -> torch.Tensor:
        i, j = _upper_pairs(feat.shape[0], feat.device)
        d2 = (feat[i] - feat[j]).pow(2).sum(1)
        agree = label_agreement(multilabels.detach().float())[i, j]
        n = max(1, int(len(d2) * self.mining_ratio))
        t = agree.topk(n).values[-1]
        if torch.isnan(self.threshold):
            self.threshold.copy_(t)
        near = d2.detach().topk(n, largest=False).indices
        pos = agree[near] >= self.threshold
        self.threshold.mul_(1 - self.momentum).add_(self.momentum * t)
        e = torch.exp(-d2[near])
        p = e[pos].mean() if pos.any() else e.new_tensor(1.0)
        neg = e.new_tensor(0.5) if pos.all() else e[~pos].mean()
        return -torch.log(p / (p + neg))


class CMLLoss(nn.Module):
    """Cross-view consistent soft multilabel learning (MAR eq. 5/6), the simplified
    2-Wasserstein distance between each camera's distribution of the log soft multilabels
    and a common target, fitted as Gaussians with diagonal covariance:

        L_CML = 1/(2V) sum over the V cameras v of ( |mu_v - mu|^2 + |sigma_v - sigma|^2 )

    mu_v, sigma_v: mean and (unbiased) standard deviation of camera v's images in the batch;
    cameras with fewer than 2 images are skipped. The target (mu, sigma) is fixed (detached),
    like the MAR code's centres, and is taken per batch as ``target``:

    * ``"batch"``: the whole batch's mean and std (the paper's text, eq. 6);
    * ``"cameras"``: the mean over the batch's cameras (those kept) of their mu_v and of
      their sigma_v (the MAR code's ``MultilabelLoss._update_centers``; the code also keeps
      these as running centres, momentum batch / 10000, started from the whole target).

    The public code averages its 2V terms (a mean and a std term per camera) rather than
    summing them, and its lambda_1 = 2e-4 is for that mean, so this does too. Needs 2
    cameras: with one the loss is 0 (the method warns and drops it).
    """

    def __init__(self, target: str = "batch"):
        super().__init__()
        if target not in ("batch", "cameras"):
            raise ValueError(f"target must be 'batch' or 'cameras'; got {target!r}")
        self.target = target

    def forward(self, log_ml: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
        x = log_ml.float()
        groups = [x[cams == v] for v in torch.unique(cams)]
        groups = [xv for xv in groups if len(xv) > 1]
        if not groups:
            return x.sum() * 0.0
        means, stds = [xv.mean(0) for xv in groups], [xv.std(0) for xv in groups]
        if self.target == "cameras":
            mu, sigma = torch.stack(means).detach().mean(0), torch.stack(stds).detach().mean(0)
        else:
            mu, sigma = x.detach().mean(0), x.detach().std(0)
        terms = [t for m, s in zip(means, stds) for t in ((m - mu).pow(2).sum(), (s - sigma).pow(2).sum())]
        return torch.stack(terms).mean()

    def extra_repr(self) -> str:
        return f"target={self.target!r}"
