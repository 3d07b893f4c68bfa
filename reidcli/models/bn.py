"""BatchNorm variants the training engine swaps into any network (and the checkpoint loader
undoes: `collapse_domain_bn`).

- `GhostBatchNorm` ("ghost batch norm", Hoffer et al., NeurIPS 2017): normalise over groups of
  ``virtual`` images of the device batch. Published re-ID numbers (MMT, BoT) trained with 64
  images on 4 GPUs under DataParallel, i.e. BatchNorm statistics over 16 images; grouping
  reproduces that on one device. State-dict keys equal plain BN's, so checkpoints load into
  an unconverted network.
- `DomainBatchNorm` (domain-specific BN, Chang et al., CVPR 2019): one set of BN statistics
  and affine parameters per domain (source, target); `use_domain(model, i)` picks the one
  the next forward passes use, and `collapse_domain_bn` turns the network back into plain
  BN with one domain's parameters for deployment.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class GhostBatchNorm(_BatchNorm):
    """BatchNorm over consecutive groups of ``virtual`` samples (1-D, 2-D or 3-D inputs)."""

    def __init__(self, num_features: int, virtual: int = 16, **kw):
        super().__init__(num_features, **kw)
        self.virtual = int(virtual)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input; got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, v = x.shape[0], self.virtual
        if not self.training or n <= v or n % v or not self.track_running_stats:
            return super().forward(x)
        # Each group through the fused native kernel (forward and backward: one pass each,
        # where composing mean/var/normalise/affine from elementwise ops took about ten and
        # made training 2-4x slower on CPU); the groups are views of x, joined once.
        outs, means, invstds = [], [], []
        for chunk in x.split(v):
            y, mean, invstd = torch.native_batch_norm(chunk, self.weight, self.bias, None, None, True, 0.0,
                                                      self.eps)
            outs.append(y)
            means.append(mean)
            invstds.append(invstd)
        with torch.no_grad():
            count = x[:v, 0].numel()
            self.num_batches_tracked.add_(1)
            mom = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            m = torch.stack(means).float().mean(0)
            var = (torch.stack(invstds).float().pow(-2) - self.eps).mean(0)  # biased, per group
            u = var * count / max(1, count - 1)
            self.running_mean.mul_(1 - mom).add_(m.to(self.running_mean.dtype), alpha=mom)
            self.running_var.mul_(1 - mom).add_(u.to(self.running_var.dtype), alpha=mom)
        return torch.cat(outs)


def convert_ghost_bn(module: nn.Module, virtual: int) -> nn.Module:
    """Replace every BatchNorm layer by a `GhostBatchNorm` sharing its parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, GhostBatchNorm):
            g = GhostBatchNorm(child.num_features, virtual, eps=child.eps, momentum=child.momentum,
                               affine=child.affine, track_running_stats=child.track_running_stats)
            if child.affine:
                g.weight, g.bias = child.weight, child.bias
            if child.track_running_stats:
                g.running_mean, g.running_var = child.running_mean, child.running_var
                g.num_batches_tracked = child.num_batches_tracked
            g.train(child.training)
            setattr(module, name, g)
        else:
            convert_ghost_bn(child, virtual)
    return module


class DomainBatchNorm(nn.Module):
    """One BN per domain; ``active`` selects the one used (set through `use_domain`)."""

    def __init__(self, bn: _BatchNorm, n_domains: int):
        super().__init__()
        self.bns = nn.ModuleList([copy.deepcopy(bn) for _ in range(n_domains)])
        self.active = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.active](x)


def convert_domain_bn(module: nn.Module, n_domains: int) -> nn.Module:
    """Replace every BatchNorm layer by a `DomainBatchNorm` with ``n_domains`` copies."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm):
            setattr(module, name, DomainBatchNorm(child, n_domains))
        elif not isinstance(child, DomainBatchNorm):
            convert_domain_bn(child, n_domains)
    return module


def collapse_domain_bn(module: nn.Module, domain: int) -> nn.Module:
    """Replace every `DomainBatchNorm` by its BN of ``domain`` (for deployment)."""
    for name, child in module.named_children():
        if isinstance(child, DomainBatchNorm):
            setattr(module, name, child.bns[domain])
        else:
            collapse_domain_bn(child, domain)
    return module


@contextmanager
def use_domain(model: nn.Module, domain: int) -> Iterator[None]:
    """Route BN of ``model`` to ``domain`` inside the block (no-op without domain BN)."""
    layers = [m for m in model.modules() if isinstance(m, DomainBatchNorm)]
    before = [m.active for m in layers]
    for m in layers:
        m.active = domain
    try:
        yield
    finally:
        for m, a in zip(layers, before):
            m.active = a


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, _BatchNorm) for m in model.modules())
