"""RBNet's keypoint heat-map loss and its total objective.

`HeatmapMSELoss` is RBNet's eq. 3 (Yu & Piao 2024; docs/papers.md section 1): the mean squared
error between the reverse backbone's 17 maps and Gaussian targets rendered from pose
keypoints, L_MSE = 1/N sum_i (y_hat_i - y_i)^2, averaged only over the maps that are
supervised (per-keypoint weights, as mmpose's KeypointMSELoss ``use_target_weight``): a
low-score keypoint, a keypoint outside the crop, or an image with no keypoints at all
contributes nothing.

`RBNetLoss` adds the terms RBNet puts on top of the ID + triplet objective (eq. 4):
l3 MSE + l4 ID2 + l5 Triplet2, with ID2 / Triplet2 the same losses on the masked branch
(backbone 2 on x * M(x), eqs. 1-2, margin 0.3).

``auto_mse_weight`` picks l3 as the paper says, "so that l3 MSE is about the size of
l2 Triplet": for a prediction of zeros, MSE = mean(y^2) ~= pi sigma^2 / (H W) (the integral
of a squared unit Gaussian over the map); for features that do not yet separate, the batch-
hard triplet loss equals its margin. Hence l3 = l2 * margin * H W / (pi sigma^2): about 196
at the paper's 128x64 maps with sigma 2, and 12 at 32x16 (64x32 inputs).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import nn

from reidcli.utils.params import Interval, check_params


class HeatmapMSELoss(nn.Module):
    """Masked heat-map MSE (RBNet eq. 3): mean over supervised maps of the per-pixel MSE."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``pred``/``target`` [N, K, H, W]; ``weight`` [N, K] (1 supervise, 0 mask) or None."""
        if pred.shape != target.shape:
            raise ValueError(f"heat-maps are {tuple(pred.shape)} but targets are {tuple(target.shape)}")
        per_map = (pred.float() - target.float()).pow(2).mean(dim=(2, 3))  # [N, K]
        if weight is None:
            return per_map.mean()
        w = weight.float()
        # no supervised map in the batch: a zero that still depends on pred (DDP-safe)
        return (per_map * w).sum() / w.sum().clamp_min(1.0)


def auto_mse_weight(heatmap_size: Sequence[int], sigma: float, margin: float = 0.3,
                    triplet_weight: float = 1.0) -> float:
    """l3 such that l3 * MSE(0, targets) ~= l2 * margin (see the module docstring)."""
    h, w = int(heatmap_size[0]), int(heatmap_size[1])
    return float(triplet_weight * margin * h * w / (math.pi * sigma**2))


class RBNetLoss(nn.Module):
    """l3 MSE(heat-maps) + l4 ID(masked) + l5 Triplet(masked) (RBNet eq. 4 minus l1 ID + l2 Tri).

    Args:
        ce, triplet: the ID and triplet loss modules the method already uses (shared so the
            masked branch gets the same label smoothing and margin).
        mse_weight, id2_weight, triplet2_weight: l3, l4, l5 (0 switches a term off).
    """

    def __init__(self, ce: nn.Module, triplet: nn.Module, *, mse_weight: float,
                 id2_weight: float = 1.0, triplet2_weight: float = 1.0):
        super().__init__()
        check_params({"mse_weight": mse_weight, "id2_weight": id2_weight, "triplet2_weight": triplet2_weight},
                     dict.fromkeys(("mse_weight", "id2_weight", "triplet2_weight"), [Interval(float, 0, None)]))
        self.ce, self.triplet, self.mse = ce, triplet, HeatmapMSELoss()
        self.weights = {"mse": float(mse_weight), "ce2": float(id2_weight),
                        "triplet2": float(triplet2_weight)}

    def terms(self, out: dict, y: torch.Tensor, target: Optional[torch.Tensor] = None,
              weight: Optional[torch.Tensor] = None) -> dict[str, tuple[float, torch.Tensor]]:
        """name -> (weight, unweighted loss) for every term with a weight > 0.

        ``target``/``weight`` are the rendered heat-maps and their [N, 17] mask; without them
        (no pose file, e.g. on an unlabelled target domain) the MSE term is left out.
        """
        w, L = self.weights, {}
        if w["mse"] > 0 and target is not None:
            L["mse"] = (w["mse"], self.mse(out["heatmaps"], target, weight))
        if w["ce2"] > 0 and "logits2" in out:
            L["ce2"] = (w["ce2"], self.ce(out["logits2"], y))
        if w["triplet2"] > 0:
            L["triplet2"] = (w["triplet2"], self.triplet(out["feat2"], y))
        return L

    def forward(self, out: dict, y: torch.Tensor, target: Optional[torch.Tensor] = None,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        terms = self.terms(out, y, target, weight)
        return sum((wt * v for wt, v in terms.values()), out["feat2"].sum() * 0.0)


class RBNetTerms:
    """What a training method adds for an RBNet: targets from the batch, then `RBNetLoss`.

    ``options`` carries the settings as attributes (validated by the caller; the training
    methods pass `reidcli.train.methods.options.SupervisedOptions`): ``mse_weight`` (l3;
    < 0 = `auto_mse_weight`, resolved at the first batch from the heat-map size),
    ``id2_weight`` (l4), ``triplet2_weight`` (l5), ``heatmap_sigma`` (target Gaussian sigma
    in heat-map pixels) and ``pose_min_score`` (keypoints scoring at or below it are masked).
    """

    def __init__(self, options: Any, ce: nn.Module, triplet: nn.Module,
                 triplet_weight: float = 1.0):
        self.sigma, self.min_score = float(options.heatmap_sigma), float(options.pose_min_score)
        self.margin = float(getattr(triplet, "margin", 0.3))
        self.triplet_weight = triplet_weight
        self.loss = RBNetLoss(ce, triplet, mse_weight=max(0.0, options.mse_weight),
                              id2_weight=options.id2_weight, triplet2_weight=options.triplet2_weight)
        self.auto = options.mse_weight < 0

    def __call__(self, out: dict, batch: dict, y: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """name -> (weight, loss) for one batch (``batch["keypoints"]`` [B, 17, 3] optional)."""
        from reidcli.data.pose_targets import render_targets

        hm_size = tuple(out["heatmaps"].shape[-2:])
        if self.auto:
            self.loss.weights["mse"] = auto_mse_weight(hm_size, self.sigma, self.margin,
                                                       self.triplet_weight or 1.0)
            self.auto = False
        target = weight = None
        if "keypoints" in batch:
            target, weight = render_targets(batch["keypoints"], hm_size, batch["img"].shape[-2:],
                                            sigma=self.sigma, min_score=self.min_score)
        return self.loss.terms(out, y, target, weight)
