"""Pseudo-label fine-tuning: the clustering baseline of UDA re-ID.

One round trains the network on the target images with the cluster ids of
``reid cluster`` as labels (outliers, -1, are never drawn), with the source objective
(BoT, Luo et al. CVPR-W 2019; the "pseudo-label baseline" of Ge et al., ICLR 2020, sec. 3):

    L = CE_ls(logits, y~) + Triplet_bh(feat, y~)

label-smoothed cross-entropy (eps 0.1) and batch-hard triplet (margin 0.3) over P x K
batches of pseudo-identities (`reidcli.train.methods.objective`, shared with
`supervised`). The classifier is re-created every round with one row per cluster,
initialised from the L2-normalised cluster centres (as MMT's public code does each
epoch), because cluster ids mean nothing from one round to the next. Settings:
`PseudoOptions`.
"""

from __future__ import annotations

import torch

from reidcli.models import network_from_checkpoint
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext
from reidcli.train.methods.objective import IdTripletObjective, weighted_result
from reidcli.train.methods.options import PseudoOptions
from reidcli.train.methods.uda import UDAMethod, init_classifier, pk_stream


@TRAINING_METHODS.register("pseudo")
class Pseudo(UDAMethod):
    """Label-smoothed CE + batch-hard triplet on the pseudo-labels of the target images."""

    name = "pseudo"
    Options = PseudoOptions
    global_outputs = True  # CE + triplet (+ centre) of backbone 1 (kd, joint, camstyle too)

    def build(self, ctx: EngineContext) -> None:
        self.build_objective(ctx)
        net = network_from_checkpoint(ctx.data["init"])
        init_classifier(net, ctx.num_classes, ctx.data.get("centers"))
        self.nets["model"] = net

    def build_objective(self, ctx: EngineContext) -> None:
        """The CE / triplet (/ centre) criteria of this method's options (before the nets:
        the centre loss draws its random centres first)."""
        from reidcli.models.rbnet import train_feat_dim  # RBNet 'both': the loss sees half the width

        ck = ctx.data["init"]
        feat_dim = train_feat_dim(ck["model_config"], int(ck.get("feat_dim") or 0))
        self.objective = IdTripletObjective(self.options, ctx.num_classes, feat_dim, ctx.device)

    def streams(self, ctx: EngineContext) -> dict:
        return {"target": pk_stream(ctx, ctx.data["target"])}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        b = batch["target"]
        out = self.net(self.trained[0])(b["img"])
        return weighted_result(self.objective.terms(out, b["label"]), out, b["label"])
