"""Pseudo-label fine-tuning: the clustering baseline of UDA re-ID.

One round trains the network on the target images with the cluster ids of
``reid cluster`` as labels (outliers, -1, are never drawn), with the source objective
(BoT, Luo et al. CVPR-W 2019; the "pseudo-label baseline" of Ge et al., ICLR 2020, sec. 3):

    L = CE_ls(logits, y~) + Triplet_bh(feat, y~)

label-smoothed cross-entropy (eps 0.1) and batch-hard triplet (margin 0.3) over P x K
batches of pseudo-identities. The classifier is re-created every round with one row per
cluster, initialised from the L2-normalised cluster centres (as MMT's public code does
each epoch), because cluster ids mean nothing from one round to the next.
"""

from __future__ import annotations

import torch

from reidcli.train.methods import METHODS, EngineContext
from reidcli.train.methods.supervised import Supervised
from reidcli.train.methods.uda import UDAMethod, init_classifier, net_from_checkpoint, pk_stream
from reidcli.utils.errors import ConfigError

DEFAULTS = {"ce_weight": 1.0, "label_smooth": 0.1, "triplet_weight": 1.0, "margin": 0.3,
            "soft_margin": False, "center_weight": 0.0, "center_lr": 0.5}


@METHODS.register("pseudo")
class Pseudo(UDAMethod, Supervised):
    """Label-smoothed CE + batch-hard triplet on the pseudo-labels of the target images."""

    name = "pseudo"
    defaults = DEFAULTS

    def build(self, ctx: EngineContext) -> None:
        self.build_losses(ctx, self.nets_feat_dim(ctx))
        net = net_from_checkpoint(ctx.data["init"])
        init_classifier(net, ctx.num_classes, ctx.data.get("centers"))
        self.nets["model"] = net

    @staticmethod
    def nets_feat_dim(ctx: EngineContext) -> int:
        from reidcli.models.rbnet import train_feat_dim

        ck = ctx.data["init"]
        return train_feat_dim(ck["model_config"], int(ck.get("feat_dim") or 0))

    def build_losses(self, ctx: EngineContext, feat_dim: int) -> None:
        """The CE / triplet (/ centre) criteria of `Supervised`, with this method's defaults."""
        from reidcli.losses import CrossEntropyLabelSmooth, TripletLoss

        o = {**self.defaults, **{k: v for k, v in self.options.items() if v is not None}}
        self.o = o
        if o["ce_weight"] <= 0 and o["triplet_weight"] <= 0:
            raise ConfigError("--ce-weight and --triplet-weight are both 0; nothing would be learnt")
        self.ce = CrossEntropyLabelSmooth(o["label_smooth"])
        self.triplet = TripletLoss(o["margin"], soft_margin=o["soft_margin"])
        self.center = None
        if o["center_weight"] > 0:
            from reidcli.losses.center import CenterLoss

            self.center = CenterLoss(ctx.num_classes, feat_dim, weight=o["center_weight"],
                                     lr=o["center_lr"]).to(ctx.device)

    def streams(self, ctx: EngineContext) -> dict:
        return {"target": pk_stream(ctx, ctx.data["target"])}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        return self.supervised_step(self.trained[0], batch["target"])

    def supervised_step(self, net: str, b: dict) -> dict[str, torch.Tensor]:
        out = self.net(net)(b["img"])
        losses = self._losses(out, b["label"])
        total = sum(w * v for w, v in losses.values())
        res = {"loss": total, **{k: v.detach() for k, (_, v) in losses.items()}}
        if "logits" in out:
            res["acc"] = (out["logits"].argmax(1) == b["label"]).float().mean()
        return res

    def extra_state(self) -> dict:
        return {**Supervised.extra_state(self), **UDAMethod.extra_state(self)}
