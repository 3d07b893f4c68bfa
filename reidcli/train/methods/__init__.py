"""Training methods: plug-ins to the one loop in `reidcli.train.engine`.

The engine owns everything that is the same for every method: epochs and iteration
budgets, data streams and their resumable samplers, the optimizer and lr schedule, AMP,
gradient clipping, DDP (process group, wrapping, SyncBN, rank-0 writes), BN grouping and
domain-specific BN, checkpoints every epoch, ``--resume``, the JSONL log, the progress bar
and the evaluation hook. A method says only *what one step computes*.

Plug-in interface (subclass `Method`, register it with ``@METHODS.register("name")``):

``build(ctx)``
    Create the networks into ``self.nets`` (name -> nn.Module). ``self.nets["model"]`` is
    the network a checkpoint deploys; extra nets (MMT's second net and the two EMA "mean
    nets", a KD teacher, ...) are saved under ``nets`` in the checkpoint. List the nets that
    receive gradients in ``self.trained`` (default: ``["model"]``); the engine moves all
    nets to the device, converts their BN layers and wraps the trained ones in DDP. ``ctx``
    is an `EngineContext` (config, device, number of classes, dataset info, distributed
    position).
``streams(ctx) -> dict[str, Stream]``
    The data the method consumes, e.g. ``{"source": pk_stream}`` or
    ``{"target": pk_stream_on_pseudo_labels, "source": ...}``. The first stream is the
    *main* one: one pass of its sampler is one epoch unless ``--iters-per-epoch`` says
    otherwise; the others cycle. Build streams with `reidcli.train.engine.make_stream`.
``param_groups() -> list[dict]``
    Optimizer parameter groups (``params``, optional ``lr_mult`` and ``weight_decay``).
``extra_optimizers() -> dict[str, Optimizer]``
    Optional optimizers stepped beside the main one (e.g. centre-loss centres with their
    own SGD, Wen et al. 2016); they are saved and restored too.
``step(batch, it) -> dict[str, Tensor]``
    One forward pass on ``batch`` (stream name -> dict with ``img`` on the device,
    ``label``, ``camid``, ``index``), run under autocast. Return ``"loss"`` (the total,
    back-propagated by the engine) and any scalar metrics to log (``"acc"``, ``"ce"``,
    ...). Call trained nets through ``self.net(name)`` so DDP wrappers are used.
``before_optimizer_step()``
    Optional gradient surgery after unscaling (e.g. centre-loss gradient rescale).
``after_step(it)``
    Optional update after the optimizer step (EMA mean nets: ``E[θ]_T = α E[θ]_{T-1} +
    (1-α) θ``; KD weight blending every N epochs, ...).
``on_epoch_start(epoch)`` / ``on_epoch_end(epoch)``
    Optional hooks.
``extra_state()`` / ``load_extra_state(state)``
    Method state that is neither a network nor an optimizer (counters, memory banks).

Finetune methods (pseudo-label, MMT, KD, joint source+target) differ from `supervised`
only in these methods and in the streams they ask for, so they reuse the loop unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from reidcli.utils.registry import Registry

METHODS: Registry = Registry("training method")


@dataclass
class EngineContext:
    """What a method may read while building: config, device and data facts."""

    cfg: Any  # TrainConfig
    device: torch.device
    dist: Any  # DistInfo
    num_classes: int = 0
    data: dict[str, Any] = field(default_factory=dict)  # name -> (Dataset, records, labels)
    options: dict[str, Any] = field(default_factory=dict)  # method-specific settings


class Method:
    """Base class of a training method (see the module docstring for the contract)."""

    name = "method"

    def __init__(self, options: Optional[dict] = None):
        self.options = dict(options or {})
        self.nets: dict[str, nn.Module] = {}
        self.trained: list[str] = ["model"]
        self._wrapped: dict[str, nn.Module] = {}
        self.ctx: Optional[EngineContext] = None

    # -- required -------------------------------------------------------------------
    def build(self, ctx: EngineContext) -> None:
        raise NotImplementedError

    def streams(self, ctx: EngineContext) -> dict:
        raise NotImplementedError

    def step(self, batch: dict, it: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # -- defaults -------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        groups = []
        for name in self.trained:
            net = self.nets[name]
            if hasattr(net, "param_groups"):
                groups += net.param_groups(1.0, self.ctx.cfg.weight_decay)
            else:
                groups.append({"params": [p for p in net.parameters() if p.requires_grad]})
        for g in groups:
            g.pop("lr", None)
        return groups

    def extra_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def before_optimizer_step(self) -> None:
        pass

    def after_step(self, it: int) -> None:
        pass

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # -- engine plumbing --------------------------------------------------------------
    def net(self, name: str = "model") -> nn.Module:
        """The network to call in `step` (the DDP wrapper when distributed)."""
        return self._wrapped.get(name, self.nets[name])

    def set_wrapped(self, name: str, module: nn.Module) -> None:
        self._wrapped[name] = module

    def train(self) -> None:
        for name, net in self.nets.items():
            net.train(name in self.trained)

    @property
    def model(self) -> nn.Module:
        return self.nets["model"]


def get_method(name: str, options: Optional[dict] = None) -> Method:
    """Instantiate a registered method by name (did-you-mean on a typo)."""
    load_builtin_methods()
    return METHODS.get(name)(options)


def load_builtin_methods() -> None:
    """Import the built-in plug-ins so they register (kept lazy: they import models)."""
    from reidcli.train.methods import joint, kd, mmt, pseudo, supervised  # noqa: F401
