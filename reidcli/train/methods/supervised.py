"""Supervised training on a labelled source domain (``reid pretrain``).

The BoT / MMT-pretrainer objective (Luo et al., "Bag of Tricks and a Strong Baseline for
Deep Person Re-ID", CVPR-W 2019; Ge et al., ICLR 2020, sec. 4.1):

    L = w_ce * CE_ls(logits, y) + w_tri * Triplet_bh(feat, y) [+ w_c * Center(feat, y)]

with label-smoothed cross-entropy (eps 0.1) on the BNNeck output, batch-hard triplet
(margin 0.3) on the feature before BN, and the optional centre loss (Wen et al. 2016,
weight 0.0035, its own SGD at lr 0.5; METHODS.md section 4). With the LSTM local branch
(METHODS.md section 5) the local feature gets the same CE + triplet terms.

Option ``target`` (MMT's pretrainer): each step also forwards a batch of unlabelled target
images without a loss so BatchNorm statistics see the target domain; with domain-specific
BN (``bn_domains``) the target batch uses its own BN layers.
"""

from __future__ import annotations

import torch

from reidcli.data.loader import ImageDataset
from reidcli.data.sampler import PKBatchSampler, SequentialSeeds
from reidcli.train.bn import use_domain
from reidcli.train.methods import METHODS, EngineContext, Method
from reidcli.utils.errors import ConfigError

DEFAULTS = {"ce_weight": 1.0, "label_smooth": 0.1, "triplet_weight": 1.0, "margin": 0.3,
            "soft_margin": False, "center_weight": 0.0, "center_lr": 0.5}


@METHODS.register("supervised")
class Supervised(Method):
    """ID (label-smoothed CE) + batch-hard triplet (+ centre) loss on ground-truth labels."""

    name = "supervised"

    def build(self, ctx: EngineContext) -> None:
        from reidcli.losses import CrossEntropyLabelSmooth, TripletLoss
        from reidcli.models import ModelConfig, build_model

        o = {**DEFAULTS, **self.options}
        self.o = o
        if o["ce_weight"] <= 0 and o["triplet_weight"] <= 0:
            raise ConfigError("--ce-weight and --triplet-weight are both 0; nothing would be learnt")
        cfg = ModelConfig.from_dict({**ctx.options["model_config"], "num_classes": ctx.num_classes})
        self.nets["model"] = build_model(cfg)
        self.ce = CrossEntropyLabelSmooth(o["label_smooth"])
        self.triplet = TripletLoss(o["margin"], soft_margin=o["soft_margin"])
        self.center = None
        if o["center_weight"] > 0:
            from reidcli.losses.center import CenterLoss
            from reidcli.models.rbnet import train_feat_dim

            self.center = CenterLoss(ctx.num_classes, train_feat_dim(cfg.to_dict(), self.nets["model"].feat_dim),
                                     weight=o["center_weight"], lr=o["center_lr"]).to(ctx.device)
        self.bn_target = 1 if ctx.options.get("bn_domains") else 0
        self.rbnet = None
        from reidcli.models.rbnet import is_rbnet

        if is_rbnet(self.nets["model"]):  # RBNet eq. 4: + l3 MSE + l4 ID2 + l5 Tri2
            from reidcli.losses.heatmap import RBNetTerms

            self.rbnet = RBNetTerms(o, self.ce, self.triplet, o["triplet_weight"])

    def streams(self, ctx: EngineContext) -> dict:
        from reidcli.train.engine import make_stream

        cfg, d = ctx.cfg, ctx.dist
        src: ImageDataset = ctx.data["source"]
        sampler = PKBatchSampler(src.labels, cfg.p, cfg.k, seed=cfg.seed, rank=d.rank,
                                 world_size=d.world_size)
        out = {"source": make_stream(src, sampler, cfg, ctx.device)}
        tgt = ctx.data.get("target")
        if tgt is not None:
            s = SequentialSeeds(len(tgt), sampler.batch_size, seed=cfg.seed + 1, rank=d.rank,
                                world_size=d.world_size)
            out["target"] = make_stream(tgt, s, cfg, ctx.device)
        return out

    def extra_optimizers(self) -> dict:
        return {"center": self.center.make_optimizer()} if self.center is not None else {}

    def before_optimizer_step(self) -> None:
        if self.center is not None and self.center.centers.grad is not None:
            self.center.centers.grad.mul_(1.0 / self.center.weight)  # Wen et al.'s own lr

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        src = batch["source"]
        x, y = src["img"], src["label"]
        with use_domain(self.nets["model"], 0):
            out = self.net("model")(x)
        losses = self._losses(out, y)
        if self.rbnet is not None:
            losses.update(self.rbnet(out, src, y))
        if "target" in batch:
            with torch.no_grad(), use_domain(self.nets["model"], self.bn_target):
                self.nets["model"](batch["target"]["img"])  # BN statistics only (MMT pretrainer)
        total = sum(w * v for w, v in losses.values())
        res = {"loss": total, **{k: v.detach() for k, (_, v) in losses.items()}}
        if "logits" in out:
            res["acc"] = (out["logits"].argmax(1) == y).float().mean()
        return res

    def _losses(self, out: dict, y: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        o, L = self.o, {}
        if o["ce_weight"] > 0 and "logits" in out:
            L["ce"] = (o["ce_weight"], self.ce(out["logits"], y))
            if "local_logits" in out:
                L["ce_local"] = (o["ce_weight"], self.ce(out["local_logits"], y))
        if o["triplet_weight"] > 0:
            L["triplet"] = (o["triplet_weight"], self.triplet(out["feat"], y))
            if "local_feat" in out:
                L["triplet_local"] = (o["triplet_weight"], self.triplet(out["local_feat"], y))
        if self.center is not None:
            L["center"] = (o["center_weight"], self.center(out["feat"], y))
        return L

    def extra_state(self) -> dict:
        return {"center": self.center.state_dict()} if self.center is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.center is not None and "center" in state:
            self.center.load_state_dict(state["center"])
