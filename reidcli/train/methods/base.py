"""`Method`, the base class of a training method, and `EngineContext`, what it may read
while building (see `reidcli.train.methods` for the contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from reidcli.train.methods.options import MethodOptions, NoOptions


@dataclass
class EngineContext:
    """What a method may read while building: config, device and data facts.

    ``facts`` holds what the entry point knows about the run (``model_config``,
    ``bn_domains``, ``source_classes``); the method's own settings are its ``options``.
    """

    cfg: Any  # TrainConfig
    device: torch.device
    dist: Any  # DistInfo
    num_classes: int = 0
    data: dict[str, Any] = field(default_factory=dict)  # name -> dataset, checkpoint, centres
    facts: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base class of a training method (see `reidcli.train.methods` for the contract).

    ``Options`` is the method's options dataclass. ``pretrain`` says whether ``reid pretrain``
    can run it (it trains from scratch or ImageNet on labelled images; the finetune methods
    and ``stargan``, which ``reid stylize fit`` runs, cannot). For ``reid finetune``: ``finetune``
    says whether it can run the method (it starts from a checkpoint and pseudo-labels),
    ``views`` how many augmented views of each target image a batch holds (MMT: 2),
    ``start_checkpoints`` how many starting checkpoints it takes (MMT: 2, ``--ckpt2``) and
    ``uses_source`` whether it trains on labelled source images too (``--source``),
    ``uses_labels`` whether it needs the pseudo-labels of ``reid cluster`` (``--labels``;
    MAR does not), ``labels_optional`` whether it also runs without them (``camstyle``:
    each target image and its styled versions are then one class), ``uses_styled``
    whether it needs camera-styled target images (``--styled``) and ``uses_reference``
    whether it needs a labelled reference set (``--reference``, MAR's agents).
    ``global_outputs`` says that its losses read only a network's global outputs
    (``feat``, ``bn_feat``, ``logits``): the engine then lets an RBNet skip its reverse and
    masked passes in training (`reidcli.models.rbnet.skip_unused_passes`).
    """

    name = "method"
    Options: type[MethodOptions] = NoOptions
    views = 1
    start_checkpoints = 1
    uses_source = False
    uses_labels = True
    labels_optional = False
    uses_styled = False
    uses_reference = False
    global_outputs = False
    # a loss helper with its own optimizer and state (`IdTripletObjective`), if the method has one
    objective = None

    def __init__(self, options: Optional[MethodOptions] = None):
        self.options = options if options is not None else self.Options()
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
        return self.objective.extra_optimizers() if self.objective is not None else {}

    def after_setup(self, opt: torch.optim.Optimizer) -> None:
        pass

    def optimizers_to_step(self, it: int) -> Optional[set[str]]:
        """Which optimizers step ``it`` zeroes and steps: ``"main"`` and names of
        `extra_optimizers`; None (the default) = all. Alternating schemes (a GAN's critic and
        generator steps) return one side per step."""
        return None

    def before_optimizer_step(self) -> None:
        if self.objective is not None:
            self.objective.before_optimizer_step()

    def after_step(self, it: int) -> None:
        pass

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def extra_state(self) -> dict:
        return self.objective.state_dict() if self.objective is not None else {}

    def load_extra_state(self, state: dict) -> None:
        if self.objective is not None:
            self.objective.load_state_dict(state)

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
