"""Optimizers and learning-rate schedules (per-iteration, so warm-up is smooth).

The schedule is a pure function of the step: linear warm-up from ``warmup_factor * lr``
over ``warmup_epochs`` (Goyal et al., 2017), then either step decay (x ``gamma`` at each
milestone epoch) or cosine annealing (Loshchilov & Hutter, ICLR 2017) to zero.
"""

from __future__ import annotations

import math

import torch

from reidcli.train.config import TrainConfig


def build_optimizer(param_groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum, Nesterov off) over the method's parameter groups.

    A group may carry ``lr_mult`` (e.g. 0.1 for a pretrained backbone) and its own
    ``weight_decay``; ``lr`` is filled from ``cfg.lr * lr_mult``.
    """
    groups = []
    for g in param_groups:
        g = dict(g)
        g["lr"] = cfg.lr * g.pop("lr_mult", 1.0)
        g.setdefault("weight_decay", cfg.weight_decay)
        g["initial_lr"] = g["lr"]
        groups.append(g)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.Adam(groups, lr=cfg.lr)


def lr_factor(step: int, iters_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based)."""
    epoch = step / max(1, iters_per_epoch)
    warm = cfg.warmup_epochs
    if warm > 0 and epoch < warm:
        alpha = epoch / warm
        return cfg.warmup_factor * (1 - alpha) + alpha
    if cfg.schedule == "step":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        span = max(1e-8, cfg.epochs - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - warm) / span)))
    return 1.0


def build_scheduler(opt: torch.optim.Optimizer, iters_per_epoch: int, cfg: TrainConfig):
    """A `LambdaLR` stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, iters_per_epoch, cfg))
