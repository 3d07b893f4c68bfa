"""Supervised training on a labelled source domain (``reid pretrain``).

The BoT / MMT-pretrainer objective (Luo et al., "Bag of Tricks and a Strong Baseline for
Deep Person Re-ID", CVPR-W 2019; Ge et al., ICLR 2020, sec. 4.1), built by
`reidcli.train.methods.objective`:

    L = w_ce * CE_ls(logits, y) + w_tri * Triplet_bh(feat, y) [+ w_c * Center(feat, y)]

with label-smoothed cross-entropy (eps 0.1) on the BNNeck output, batch-hard triplet
(margin 0.3) on the feature before BN, and the optional centre loss (Wen et al. 2016,
weight 0.0035, its own SGD at lr 0.5; Chen et al. 2022). An RBNet adds its heat-map
and masked-branch terms (eq. 4). Settings: `SupervisedOptions`.

Option ``target`` (MMT's pretrainer): each step also forwards a batch of unlabelled target
images without a loss so BatchNorm statistics see the target domain; with domain-specific
BN (``bn_domains``) the target batch uses its own BN layers.
"""

from __future__ import annotations

import torch

from reidcli.data.loader import ImageDataset
from reidcli.data.sampler import PKBatchSampler, SequentialSeeds
from reidcli.models.bn import use_domain
from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext, Method
from reidcli.train.methods.objective import IdTripletObjective, weighted_result
from reidcli.train.methods.options import SupervisedOptions


@TRAINING_METHODS.register("supervised")
class Supervised(Method):
    """ID (label-smoothed CE) + batch-hard triplet (+ centre) loss on ground-truth labels."""

    name = "supervised"
    Options = SupervisedOptions

    def build(self, ctx: EngineContext) -> None:
        from reidcli.models import ModelConfig, build_model
        from reidcli.models.rbnet import is_rbnet, train_feat_dim

        o = self.options
        cfg = ModelConfig.from_dict({**ctx.facts["model_config"], "num_classes": ctx.num_classes})
        self.nets["model"] = build_model(cfg)
        feat_dim = train_feat_dim(cfg.to_dict(), self.nets["model"].feat_dim)  # RBNet 'both': half
        self.objective = IdTripletObjective(o, ctx.num_classes, feat_dim, ctx.device)
        self.bn_target = 1 if ctx.facts.get("bn_domains") else 0
        self.rbnet = None
        if is_rbnet(self.nets["model"]):  # RBNet eq. 4: + l3 MSE + l4 ID2 + l5 Tri2
            from reidcli.losses.heatmap import RBNetTerms

            self.rbnet = RBNetTerms(o, self.objective.ce, self.objective.triplet, o.triplet_weight)

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

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        src = batch["source"]
        x, y = src["img"], src["label"]
        with use_domain(self.nets["model"], 0):
            out = self.net("model")(x)
        terms = self.objective.terms(out, y)
        if self.rbnet is not None:
            terms.update(self.rbnet(out, src, y))
        if "target" in batch:
            with torch.no_grad(), use_domain(self.nets["model"], self.bn_target):
                self.nets["model"](batch["target"]["img"])  # BN statistics only (MMT pretrainer)
        return weighted_result(terms, out, y)
