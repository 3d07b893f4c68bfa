"""Mutual Mean-Teaching (Ge, Chen & Li, "Mutual Mean-Teaching: Pseudo Label Refinery for
Unsupervised Domain Adaptation on Person Re-identification", ICLR 2020).

Two networks θ1, θ2 (from two source checkpoints, or one checkpoint and a second
augmentation stream) and their temporal averages, the *mean nets* E[θ1], E[θ2] (eq. 5,
α = 0.999, updated after every step with the warm-up α_t = min(1 - 1/(t+1), α) of the
public code). Each network sees its own augmented view of the same P x K batch; each
mean net sees its network's view. With λ_id = 0.5 and λ_tri = 0.8 (eq. 12):

    L = (1 - λ_id)(L_id(θ1) + L_id(θ2)) + (1 - λ_tri)(L_tri(θ1) + L_tri(θ2))
        + λ_id (L_sid(θ1 | E[θ2]) + L_sid(θ2 | E[θ1]))
        + λ_tri (L_stri(θ1 | E[θ2]) + L_stri(θ2 | E[θ1]))

with L_id the label-smoothed CE on the hard pseudo-labels, L_tri the softmax-triplet on
them (eq. 9), L_sid the soft CE against the other mean net's class probabilities (eq. 8)
and L_stri the soft softmax-triplet against the other mean net's triplet probabilities
(eqs. 10-11). All four classifiers are re-initialised from the cluster centres each round.

Checkpoint layout: ``model`` is E[θ1] (so ``reid features`` deploys a mean net by
default, as MMT evaluates), ``nets`` holds ``mean2``, ``net1`` and ``net2``; the train
state carries the optimizer moments and the EMA step, so the next round continues the
mean nets (and the EMA step of the α warm-up) instead of starting from fresh copies. Adam
starts anew each round (``fresh_optimizer``, as the public code builds a new optimizer
after every re-clustering); ``fresh_optimizer=False`` continues its moments too.
"""

from __future__ import annotations

import logging

import torch

from reidcli.models import network_from_checkpoint
from reidcli.models.rbnet import is_rbnet, masked_id_loss, mean_output, student_output
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext
from reidcli.train.methods.options import MMTOptions
from reidcli.train.methods.uda import (
    UDAMethod,
    copy_net,
    ema_update_,
    init_classifier,
    pk_stream,
)

log = logging.getLogger(__name__)
NETS = ("model", "mean2", "net1", "net2")  # E[θ1], E[θ2], θ1, θ2


@TRAINING_METHODS.register("mmt")
class MMT(UDAMethod):
    """Mutual Mean-Teaching: two nets taught by each other's mean nets."""

    name = "mmt"
    Options = MMTOptions
    views = 2
    start_checkpoints = 2

    def build(self, ctx: EngineContext) -> None:
        from reidcli.losses import CrossEntropyLabelSmooth, SoftEntropy, SoftTripletLoss

        self.ce = CrossEntropyLabelSmooth(self.options.label_smooth)
        self.tri = SoftTripletLoss()
        self.soft_ce = SoftEntropy()
        self.ema_step = 0
        self.trained = ["net1", "net2"]
        self.nets.update(self._initial_nets(ctx))
        for name in NETS:
            init_classifier(self.nets[name], ctx.num_classes, ctx.data.get("centers"))
        for name in ("model", "mean2"):
            for p in self.nets[name].parameters():
                p.requires_grad_(False)
        self.find_unused = is_rbnet(self.nets["net1"])  # RBNet's second classifier sits idle (DDP)

    def _initial_nets(self, ctx: EngineContext) -> dict:
        ck, ck2 = ctx.data["init"], ctx.data.get("init2")
        if ck.get("method") == "mmt" and all(n in ck.get("nets", {}) for n in NETS[1:]):
            nets = {"model": network_from_checkpoint(ck)}
            nets.update({n: network_from_checkpoint(ck, ck["nets"][n]) for n in NETS[1:]})
            ts = ck.get("train_state") or {}
            self.ema_step = int((ts.get("method") or {}).get("ema_step", 0))
            log.info("continuing MMT from %s nets and mean nets (EMA step %d)", ck.get("method"), self.ema_step)
            return nets
        net1 = network_from_checkpoint(ck)
        net2 = network_from_checkpoint(ck2) if ck2 is not None else network_from_checkpoint(ck)
        return {"model": copy_net(net1), "mean2": copy_net(net2), "net1": net1, "net2": net2}

    def train(self) -> None:
        # The public code keeps the mean nets in training mode: their BN statistics come
        # from their own forward passes (under no_grad), not from the EMA.
        for net in self.nets.values():
            net.train(True)

    def streams(self, ctx: EngineContext) -> dict:
        return {"target": pk_stream(ctx, ctx.data["target"])}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        b = batch["target"]
        x1, x2, y = b["img"], b["img2"], b["label"]
        o1, o2 = self.net("net1")(x1), self.net("net2")(x2)
        with torch.no_grad():  # RBNet: a mean net sees its network's masked view (paper Fig. 2)
            e1, e2 = mean_output(self.nets["model"], x1, o1), mean_output(self.nets["mean2"], x2, o2)
        o1, o2 = student_output(o1), student_output(o2)
        L = mmt_losses(o1, o2, e1, e2, y, self.ce, self.tri, self.soft_ce)
        # RBNet: train the masked head (bnneck2/classifier2) the mean nets' soft labels use
        L["ce"] = L["ce"] + masked_id_loss(o1, y, self.ce) + masked_id_loss(o2, y, self.ce)
        wc, wt = self.options.soft_ce_weight, self.options.soft_tri_weight
        total = ((1 - wc) * L["ce"] + (1 - wt) * L["triplet"] + wc * L["soft_ce"] + wt * L["soft_triplet"])
        res = {"loss": total, **{k: v.detach() for k, v in L.items()}}
        res["acc"] = (o1["logits"].argmax(1) == y).float().mean()
        return res

    def after_step(self, it: int) -> None:
        alpha = self.options.alpha
        ema_update_(self.nets["model"], self.nets["net1"], alpha, self.ema_step)
        ema_update_(self.nets["mean2"], self.nets["net2"], alpha, self.ema_step)
        self.ema_step += 1

    def extra_state(self) -> dict:
        return {**super().extra_state(), "ema_step": self.ema_step}

    def load_extra_state(self, state: dict) -> None:
        self.ema_step = int(state.get("ema_step", self.ema_step))


def mmt_losses(o1: dict, o2: dict, e1: dict, e2: dict, y: torch.Tensor, ce, tri, soft_ce) -> dict:
    """The four MMT terms, each summed over the two networks (eqs. 8-11)."""
    return {
        "ce": ce(o1["logits"], y) + ce(o2["logits"], y),
        "triplet": tri(o1["feat"], y) + tri(o2["feat"], y),
        "soft_ce": soft_ce(o1["logits"], e2["logits"]) + soft_ce(o2["logits"], e1["logits"]),
        "soft_triplet": tri(o1["feat"], y, e2["feat"]) + tri(o2["feat"], y, e1["feat"]),
    }
