"""MAR: soft multilabel adaptation with reference agents (Yu, Zheng, Li, Xiang & Gong,
"Unsupervised Person Re-identification by Soft Multilabel Learning", CVPR 2019, as
Zhang et al. 2020 use it; docs/papers.md section 2). No clustering: the target's identity
labels are never used.

``agents`` (``reid pretrain --method agents``): the agent-learning loss L_AL only, on the
labelled reference set (MAR's pretraining); the agents, one learnable unit-norm vector per
reference identity, are saved in the checkpoint (``nets["agents"]``).

``mar`` (``reid finetune --method mar --reference REF``): each step draws half a batch of
target images and half of reference images and minimises

    L = L_MDL + lambda_1 L_CML + lambda_2 (L_AL + beta L_RJ)

(`reidcli.losses.soft_multilabel`, `reidcli.losses.agents`). Choices of the public code
(KovenYu/MAR) where the paper and seed are silent: features are the unit-norm embedding
the checkpoint deploys (the BNNeck output, or with ``--neck none`` the pooled feature as in
the MAR code and the ``mar`` recipe); an epoch is one pass over the reference set; the agents receive gradients from L_AL only
(RJ, CML and the soft multilabels use them detached); MDL reads each target image's soft
multilabel from a running-average memory (momentum 0.1) and starts after the first epoch,
and the memory is filled from then on (``memory_start`` 'mdl'; 'warmup' fills it from the
first epoch, so MDL's first agreements carry labels of the warm-up network); CML's target is
the batch's mean and std or, as the code, the mean of the cameras' (``cml_target``); the
MDL agreement threshold is a running average of the batch quantile. Without agents in
the starting checkpoint they are built from ``--reference``: the mean unit-norm embedding of
each reference identity.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.train.methods import TRAINING_METHODS
from reidcli.train.methods.base import EngineContext, Method
from reidcli.train.methods.options import AgentsOptions, MarOptions
from reidcli.train.methods.uda import UDAMethod, init_classifier
from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)


class Agents(nn.Module):
    """Np learnable reference agents; calling it returns them unit-norm [Np, D]."""

    def __init__(self, num: int, dim: int, weight: torch.Tensor | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num, dim) if weight is None else weight.clone().float())

    def forward(self) -> torch.Tensor:
        return F.normalize(self.weight, dim=1)


def check_trained_feature(model_config: dict, method: str) -> None:
    """`ConfigError` for an RBNet that deploys its masked feature (``--rb-feature masked``
    or ``both``): agents and mar train the global BNNeck embedding (`embedding`), so the
    agents would neither match the deployed feature's width ('both') nor its branch."""
    feature = (model_config.get("rbnet") or {}).get("feature", "global")
    if model_config.get("arch") == "rbnet" and feature != "global":
        raise ConfigError(f"--method {method} trains the global embedding, but this RBNet deploys the "
                          f"'{feature}' feature; use an RBNet with --rb-feature global")


def random_stream(ctx: EngineContext, dataset, batch_size: int, seed_offset: int = 0):
    """An engine stream of shuffled batches of ``batch_size`` images (labels not needed)."""
    from reidcli.data.sampler import SequentialSeeds
    from reidcli.train.engine import make_stream

    cfg, d = ctx.cfg, ctx.dist
    sampler = SequentialSeeds(len(dataset), batch_size, seed=cfg.seed + seed_offset, rank=d.rank,
                              world_size=d.world_size)
    return make_stream(dataset, sampler, cfg, ctx.device)


def half_batch(ctx: EngineContext) -> int:
    """Images per stream when a batch is half target, half reference (at least 2)."""
    return max(2, ctx.cfg.p * ctx.cfg.k // 2)


def embedding(out: dict) -> torch.Tensor:
    """The unit-norm feature MAR trains: the one the checkpoint deploys (BNNeck output)."""
    return F.normalize(out["bn_feat"].float(), dim=1)


@TRAINING_METHODS.register("agents")
class AgentsPretrain(Method):
    """MAR's reference pretraining: L_AL of the labelled images over learnable agents."""

    name = "agents"
    global_outputs = True  # the BNNeck embedding only
    Options = AgentsOptions

    def build(self, ctx: EngineContext) -> None:
        from reidcli.losses.agents import AgentLoss
        from reidcli.models import ModelConfig, build_model

        check_trained_feature(ctx.facts["model_config"], self.name)
        net = build_model(ModelConfig.from_dict({**ctx.facts["model_config"], "num_classes": 0}))
        self.nets["model"] = net
        self.nets["agents"] = Agents(ctx.num_classes, net.feat_dim)
        self.trained = ["model", "agents"]
        self.al = AgentLoss(self.options.scale)

    def streams(self, ctx: EngineContext) -> dict:
        return {"source": random_stream(ctx, ctx.data["source"], ctx.cfg.p * ctx.cfg.k)}

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        s = batch["source"]
        f, a = embedding(self.net("model")(s["img"])), self.net("agents")()
        al = self.al(f, a, s["label"])
        return {"loss": al, "al": al.detach(), "acc": ((f @ a.t()).argmax(1) == s["label"]).float().mean()}


@TRAINING_METHODS.register("mar")
class Mar(UDAMethod):
    """MDL + lambda_1 CML + lambda_2 (AL + beta RJ) on target and reference half-batches."""

    name = "mar"
    global_outputs = True  # the BNNeck embedding only
    Options = MarOptions
    uses_labels = False
    uses_reference = True

    def build(self, ctx: EngineContext) -> None:
        from reidcli.losses.agents import AgentLoss, RJLoss
        from reidcli.losses.soft_multilabel import CMLLoss, MDLLoss, SoftMultilabel
        from reidcli.models import network_from_checkpoint

        o = self.options
        check_trained_feature(ctx.data["init"]["model_config"], self.name)
        net = network_from_checkpoint(ctx.data["init"])
        init_classifier(net, 0, None)  # MAR classifies over the agents only
        self.nets["model"] = net.to(ctx.device)
        self.nets["agents"] = self._agents(ctx, net)
        self.trained = ["model", "agents"]
        self.ml, self.al, self.rj = SoftMultilabel(o.scale), AgentLoss(o.scale), RJLoss(o.rj_margin)
        self.cml, self.mdl = CMLLoss(o.cml_target), MDLLoss(o.mining_ratio, o.threshold_momentum).to(ctx.device)
        n_ref = self.nets["agents"].weight.shape[0]
        self.memory = torch.zeros(len(ctx.data["target"]), n_ref, device=ctx.device)
        self.seen = torch.zeros(len(ctx.data["target"]), dtype=torch.bool, device=ctx.device)
        cams = {r.camid for r in ctx.data["target"].records}
        self.use_cml = o.lambda_1 > 0 and len(cams) > 1
        if o.lambda_1 > 0 and not self.use_cml:
            log.warning("the target has one camera; the cross-view loss (CML) needs two and is dropped")
        self.epoch = 0

    def _agents(self, ctx: EngineContext, net: nn.Module) -> Agents:
        n_ref, ck = int(ctx.facts["reference_classes"]), ctx.data["init"]
        saved = (ck.get("nets") or {}).get("agents")
        if saved is not None:
            w = saved["weight"]
            if tuple(w.shape) != (n_ref, net.feat_dim):
                raise InputError(f"the checkpoint's agents are {tuple(w.shape)} but --reference has {n_ref} "
                                 f"identities of {net.feat_dim}-d features; pretrain the agents on this "
                                 "reference set ('reid pretrain --method agents')")
            return Agents(n_ref, net.feat_dim, w)
        log.info("the checkpoint has no agents; building them from the %d --reference identities", n_ref)
        return Agents(n_ref, net.feat_dim, reference_means(net, ctx.data["reference"], n_ref, ctx))

    def streams(self, ctx: EngineContext) -> dict:
        n = half_batch(ctx)
        # the reference stream first: it is the engine's main one, so an epoch (with
        # iters_per_epoch 0) is one pass over the reference set, as in the MAR code
        return {"reference": random_stream(ctx, ctx.data["reference"], n, seed_offset=1),
                "target": random_stream(ctx, ctx.data["target"], n)}

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        t, r, o = batch["target"], batch["reference"], self.options
        nt = t["img"].shape[0]
        f = embedding(self.net("model")(torch.cat([t["img"], r["img"]])))
        ft, fr, a = f[:nt], f[nt:], self.net("agents")()
        res = {"al": self.al(fr, a, r["label"]), "rj": self.rj(fr, a.detach(), r["label"], ft)}
        log_ml = self.ml(ft, a.detach(), log=True)
        res["cml"] = self.cml(log_ml, t["camid"]) if self.use_cml else log_ml.sum() * 0.0
        mdl_on = self.epoch >= o.mdl_warmup_epochs
        if mdl_on or o.memory_start == "warmup":  # the MAR code fills the memory only with MDL on
            ml = self._remember(t["index"], log_ml.detach().exp())
        res["mdl"] = self.mdl(ft, ml) if mdl_on else ft.sum() * 0.0
        total = res["mdl"] + o.lambda_1 * res["cml"] + o.lambda_2 * (res["al"] + o.beta * res["rj"])
        acc = ((fr @ a.t()).argmax(1) == r["label"]).float().mean()
        return {"loss": total, **{k: v.detach() for k, v in res.items()}, "acc": acc}

    @torch.no_grad()
    def _remember(self, idx: torch.Tensor, ml: torch.Tensor) -> torch.Tensor:
        """Each image's soft multilabel as a running average (first sight: the value)."""
        idx = idx.to(self.memory.device)
        m = self.options.memory_momentum
        old = self.memory[idx]
        self.memory[idx] = torch.where(self.seen[idx, None], (1 - m) * old + m * ml, ml)
        self.seen[idx] = True
        return self.memory[idx]

    def extra_state(self) -> dict:
        return {**super().extra_state(), "mdl_threshold": self.mdl.threshold.detach().cpu()}

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        if "mdl_threshold" in state:
            self.mdl.threshold.copy_(state["mdl_threshold"])


@torch.no_grad()
def reference_means(net: nn.Module, dataset, n: int, ctx: EngineContext) -> torch.Tensor:
    """[n, D] the mean unit-norm embedding of each reference identity (agents' start)."""
    from reidcli.features import embed_records

    ck = ctx.data["init"]
    feats, _ = embed_records(net, dataset.root, dataset.records, size=dataset.size,
                             mean=ck["pixel_mean"], std=ck["pixel_std"], batch_size=ctx.cfg.p * ctx.cfg.k,
                             workers=ctx.cfg.workers, device=ctx.device, desc="reference agents")
    f = F.normalize(torch.as_tensor(feats).float(), dim=1)
    y = torch.as_tensor(dataset.labels).long()
    sums = torch.zeros(n, f.shape[1]).index_add_(0, y, f)
    return F.normalize(sums, dim=1)
