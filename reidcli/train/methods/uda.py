"""Shared pieces of the domain-adaptation (``reid finetune``) methods.

* `init_classifier`: re-initialise the classifier from cluster centres (MMT, Ge et al.
  ICLR 2020, sec. 4.2 / public code: ``classifier.weight = normalize(centres)`` per epoch).
* `ema_update_`: the mean-teacher update ``E[θ]_T = α E[θ]_{T-1} + (1 - α) θ`` (Tarvainen
  & Valpola 2017; MMT eq. 5) with MMT's warm-up ``α_t = min(1 - 1 / (t + 1), α)``.
* `blend_`: the KD weight update ``W = (1 - μ) W + μ W_int`` (Chen et al. 2022, eq. 4).
* `TwoViewDataset`: two independently augmented views of every image (MMT feeds one view
  to each network).
* `UDAMethod`: parameter groups that remember parameter names so the next round's
  optimizer continues the previous round's Adam moments for every parameter that
  survives (the classifier is re-created each round and starts fresh), unless the
  method's options ask for a ``fresh_optimizer`` (MMT's default, as its public code).
"""

from __future__ import annotations

import copy
import logging
from typing import Optional

import torch
from torch import nn

from reidcli.data.loader import ImageDataset, _seeded
from reidcli.data.sampler import PKBatchSampler, sample_seed
from reidcli.train.methods.base import EngineContext, Method

log = logging.getLogger(__name__)


def init_classifier(net: nn.Module, num_classes: int, centers: Optional[torch.Tensor]) -> None:
    """A fresh classifier of ``num_classes`` rows, set to the L2-normalised ``centers``."""
    net.reset_classifier(num_classes, centers)


@torch.no_grad()
def ema_update_(ema: nn.Module, net: nn.Module, alpha: float, step: int) -> float:
    """Mean-teacher update of ``ema``'s parameters in place; returns the α used.

    MMT updates parameters only; the mean nets' BN statistics come from their own
    forward passes in training mode, as in the public code.
    """
    a = min(1.0 - 1.0 / (step + 1), alpha)
    for e, p in zip(ema.parameters(), net.parameters()):
        e.mul_(a).add_(p.detach(), alpha=1.0 - a)
    return a


@torch.no_grad()
def blend_(dst: nn.Module, src: nn.Module, mu: float) -> None:
    """``dst = (1 - mu) dst + mu src`` over parameters and floating-point buffers."""
    s = src.state_dict()
    for k, v in dst.state_dict().items():
        if torch.is_floating_point(v):
            v.mul_(1.0 - mu).add_(s[k].to(v.dtype), alpha=mu)


def copy_net(net: nn.Module) -> nn.Module:
    """An independent copy with gradients off (a mean net / fixed target)."""
    out = copy.deepcopy(net)
    for p in out.parameters():
        p.requires_grad_(False)
    return out


class TwoViewDataset(ImageDataset):
    """`ImageDataset` whose items also hold ``img2``: the same image augmented again under
    an independent seed (MMT feeds one view to each network, and each mean net sees its
    own network's view)."""

    def augment(self, img, seed, index: int) -> dict:
        seed2 = None if seed is None else sample_seed(seed, 1, 7)
        return {"img": _seeded(self.tail, img, seed), "img2": _seeded(self.tail, img, seed2)}


def pk_stream(ctx: EngineContext, dataset: ImageDataset, seed_offset: int = 0):
    """An engine stream of P x K batches over ``dataset.labels`` (negatives never drawn)."""
    from reidcli.train.engine import make_stream

    cfg, d = ctx.cfg, ctx.dist
    sampler = PKBatchSampler(dataset.labels, cfg.p, cfg.k, seed=cfg.seed + seed_offset,
                             rank=d.rank, world_size=d.world_size)
    return make_stream(dataset, sampler, cfg, ctx.device)


class UDAMethod(Method):
    """Base of the finetune methods: named parameter groups and optimizer carry-over.

    ``ctx.data`` holds ``init`` (the loaded checkpoint dict), optional ``init2`` (a second
    checkpoint), ``centers`` (a [K, D] tensor or None) and the datasets.
    """


    def after_setup(self, opt: torch.optim.Optimizer) -> None:
        if getattr(self.options, "fresh_optimizer", False):  # a new optimizer each round (MMT's code)
            log.info("a fresh optimizer for this round (the previous round's moments are not continued)")
            return
        self.restore_optimizer(opt)

    def param_groups(self) -> list[dict]:
        """Decay on weights, none on norms and biases (fast-reid), or on every parameter
        with ``cfg.weight_decay_all`` (the MMT code)."""
        decay, no_decay, self._names = [], [], ([], [])
        wd, every = self.ctx.cfg.weight_decay, getattr(self.ctx.cfg, "weight_decay_all", False)
        for name in self.trained:
            for pn, p in self.nets[name].named_parameters():
                if not p.requires_grad:
                    continue
                i = 1 if p.ndim <= 1 and not every else 0
                (no_decay if i else decay).append(p)
                self._names[i].append(f"{name}.{pn}")
        return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]

    def param_names(self) -> list[str]:
        return self._names[0] + self._names[1]

    def extra_state(self) -> dict:
        return {**super().extra_state(), "param_names": self.param_names()}

    def restore_optimizer(self, opt: torch.optim.Optimizer) -> int:
        """Load the previous round's optimizer moments by parameter name (same shapes)."""
        ck = self.ctx.data.get("init") or {}
        ts = ck.get("train_state") or {}
        old_names = (ts.get("method") or {}).get("param_names")
        if ck.get("method") != self.name or not old_names or "optimizer" not in ts:
            return 0
        old = ts["optimizer"]
        order = [i for g in old["param_groups"] for i in g["params"]]
        by_name = {n: old["state"].get(i) for n, i in zip(old_names, order)}
        params = [p for g in opt.param_groups for p in g["params"]]
        n = 0
        for name, p in zip(self.param_names(), params):
            st = None if "classifier" in name else by_name.get(name)  # re-created each round
            if st and all(not torch.is_tensor(v) or v.ndim == 0 or v.shape == p.shape
                          for v in st.values()):
                opt.state[p] = {k: (v.clone().to(p.device) if torch.is_tensor(v) else v)
                                for k, v in st.items()}
                n += 1
        log.info("continued the optimizer state of %d/%d parameters", n, len(params))
        return n
