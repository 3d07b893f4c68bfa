"""Knowledge-distillation weight update for unsupervised label adaptation (CSAM-ReID
2022: attention + ULA + KD; docs/papers.md section 4).

The target network W is not trained by gradients. An *intermediate* copy W_int is
fine-tuned on the pseudo-labelled target images (ULA labels: ``reid cluster
--expand-threshold``) with the source objective: label-smoothed CE (eps 0.1) + batch-hard
triplet (margin 0.3) + 0.0035 x centre loss (Wen et al., ECCV 2016). Every ``kd_every``
epochs (5 in the paper; counted across rounds, so rounds of one epoch blend every fifth
round) the target moves toward it:

    W = (1 - mu) W + mu W_int,   mu = 0.5

over parameters and BN statistics. W_int keeps training from where it is (it is not reset
to W), so W is a slow, epoch-level average of the fine-tuned weights. Both classifiers are
re-initialised from the cluster centres each round. The checkpoint deploys W (``model``)
and carries W_int (``nets/intermediate``) for the next round.
"""

from __future__ import annotations

import logging

from reidcli.models import network_from_checkpoint
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext
from reidcli.train.methods.options import KDOptions
from reidcli.train.methods.pseudo import Pseudo
from reidcli.train.methods.uda import blend_, copy_net, init_classifier

log = logging.getLogger(__name__)


@TRAINING_METHODS.register("kd")
class KD(Pseudo):
    """Fine-tune an intermediate copy; blend it into the target weights every N epochs."""

    name = "kd"
    Options = KDOptions

    def build(self, ctx: EngineContext) -> None:
        self.build_objective(ctx)
        ck = ctx.data["init"]
        target = network_from_checkpoint(ck)
        prev = ck.get("nets", {}).get("intermediate") if ck.get("method") == "kd" else None
        inter = network_from_checkpoint(ck, prev) if prev is not None else network_from_checkpoint(ck)
        ts = ck.get("train_state") or {}
        self.kd_epochs = int((ts.get("method") or {}).get("kd_epochs", 0)) if prev is not None else 0
        for net in (target, inter):
            init_classifier(net, ctx.num_classes, ctx.data.get("centers"))
        self.nets["model"] = copy_net(target)
        self.nets["intermediate"] = inter
        self.trained = ["intermediate"]

    def on_epoch_end(self, epoch: int) -> None:
        o = self.options
        self.kd_epochs += 1
        if self.kd_epochs % o.kd_every == 0:
            blend_(self.nets["model"], self.nets["intermediate"], o.mu)
            log.info("kd: W = %g W + %g W_int after epoch %d", 1 - o.mu, o.mu, self.kd_epochs)
        else:
            log.info("kd: epoch %d, next blend after epoch %d", self.kd_epochs,
                     (self.kd_epochs // o.kd_every + 1) * o.kd_every)

    def extra_state(self) -> dict:
        return {**super().extra_state(), "kd_epochs": self.kd_epochs}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        self.kd_epochs = int(state.get("kd_epochs", self.kd_epochs))
