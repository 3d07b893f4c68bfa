"""The BoT objective shared by `supervised` and the pseudo-label methods (one builder).

    L = w_ce * CE_ls(logits, y) + w_tri * Triplet_bh(feat, y) [+ w_c * Center(feat, y)]

Label-smoothed cross-entropy (Szegedy et al. 2016) on the BNNeck logits, batch-hard
triplet (Hermans et al. 2017) on the feature before BN (Luo et al., "Bag of Tricks and a
Strong Baseline for Deep Person Re-ID", CVPR-W 2019), and the optional centre loss (Wen et
al., ECCV 2016) whose centres have their own SGD. With the LSTM local branch (LSTM-UDA
2021) the local feature gets the same CE + triplet terms.
"""

from __future__ import annotations

from typing import Optional

import torch

from reidcli.train.methods.options import LossOptions

Terms = dict[str, tuple[float, torch.Tensor]]  # name -> (weight, unweighted loss)


class IdTripletObjective:
    """The criteria of `LossOptions` (built once, by the method, in its own RNG order)."""

    def __init__(self, o: LossOptions, num_classes: int, feat_dim: int, device: torch.device):
        from reidcli.losses import CrossEntropyLabelSmooth, TripletLoss

        self.o = o
        self.ce = CrossEntropyLabelSmooth(o.label_smooth)
        self.triplet = TripletLoss(o.margin, soft_margin=o.soft_margin)
        self.center = None
        if o.center_weight > 0:
            from reidcli.losses.center import CenterLoss

            self.center = CenterLoss(num_classes, feat_dim, weight=o.center_weight,
                                     lr=o.center_lr).to(device)

    def terms(self, out: dict, y: torch.Tensor) -> Terms:
        """Every term with a weight > 0 for a network output ``out`` and labels ``y``."""
        o, L = self.o, {}
        if o.ce_weight > 0 and "logits" in out:
            L["ce"] = (o.ce_weight, self.ce(out["logits"], y))
            if "local_logits" in out:
                L["ce_local"] = (o.ce_weight, self.ce(out["local_logits"], y))
        if o.triplet_weight > 0:
            L["triplet"] = (o.triplet_weight, self.triplet(out["feat"], y))
            if "local_feat" in out:
                L["triplet_local"] = (o.triplet_weight, self.triplet(out["local_feat"], y))
        if self.center is not None:
            L["center"] = (o.center_weight, self.center(out["feat"], y))
        return L

    # -- the centre loss's own optimizer and state (nothing without it) -------------------
    def extra_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"center": self.center.make_optimizer()} if self.center is not None else {}

    def before_optimizer_step(self) -> None:
        if self.center is not None and self.center.centers.grad is not None:
            self.center.centers.grad.mul_(1.0 / self.center.weight)  # Wen et al.'s own lr

    def state_dict(self) -> dict:
        return {"center": self.center.state_dict()} if self.center is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.center is not None and "center" in state:
            self.center.load_state_dict(state["center"])


def weighted_result(terms: Terms, out: dict, y: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"loss": sum of weight x term, each term detached, "acc" of the logits}``."""
    total = sum(w * v for w, v in terms.values())
    res = {"loss": total, **{k: v.detach() for k, (_, v) in terms.items()}}
    if "logits" in out and y is not None:
        res["acc"] = (out["logits"].argmax(1) == y).float().mean()
    return res
