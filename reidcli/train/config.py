"""`TrainConfig`: the engine's settings, shared by every method (and stored in checkpoints).

Defaults follow the MMT source pre-training recipe (Ge et al., ICLR 2020; BoT, Luo et al.
2019): Adam, lr 3.5e-4, weight decay 5e-4, linear warm-up over 10 epochs from 1%, x0.1 at
epochs 40 and 70, 80 epochs, P=16 identities x K=4 images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from reidcli.utils.errors import ConfigError

OPTIMIZERS = ("adam", "sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


@dataclass
class TrainConfig:
    """Engine settings (each a CLI flag of ``reid pretrain`` / ``reid finetune``).

    Attributes:
        epochs: epochs to train in total.
        iters_per_epoch: optimizer steps per epoch; 0 = one pass of the main sampler.
        max_iters: stop (and checkpoint) after this many steps in total; 0 = no budget.
        stop_after: stop this run after this many *new* epochs (0 = off); the checkpoint
            stays resumable, which is how an interruption is simulated.
        optimizer, lr, weight_decay, momentum: the optimizer.
        schedule: 'step' (x gamma at each of ``milestones``), 'cosine' or 'constant'.
        warmup_epochs, warmup_factor: linear warm-up from ``warmup_factor * lr``.
        p, k: identities per batch and images per identity (batch = p * k).
        images_per_bn: BatchNorm statistics over groups of this many images (0 = whole batch).
        sync_bn: under DDP on CUDA, synchronise BN across processes (replaces grouping).
        amp: mixed precision on CUDA (ignored on CPU).
        seed, deterministic: reproducibility (see `reidcli.utils.seed`).
        workers: DataLoader worker processes.
        grad_clip: clip the gradient norm to this value (0 = off).
        eval_every: evaluate on query/gallery every N epochs (0 = off).
        log_every: steps between JSONL log lines.
    """

    epochs: int = 80
    iters_per_epoch: int = 0
    max_iters: int = 0
    stop_after: int = 0
    optimizer: str = "adam"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "step"
    milestones: list[int] = field(default_factory=lambda: [40, 70])
    gamma: float = 0.1
    warmup_epochs: float = 10.0
    warmup_factor: float = 0.01
    p: int = 16
    k: int = 4
    images_per_bn: int = 16
    sync_bn: bool = True
    amp: bool = True
    seed: int = 0
    deterministic: bool = False
    workers: int = 4
    grad_clip: float = 0.0
    eval_every: int = 0
    log_every: int = 20

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> "TrainConfig":
        _pos("--epochs", self.epochs, int)
        for flag, v in (("--iters-per-epoch", self.iters_per_epoch), ("--max-iters", self.max_iters),
                        ("--stop-after", self.stop_after), ("--images-per-bn", self.images_per_bn),
                        ("--workers", self.workers), ("--eval-every", self.eval_every)):
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{flag} must be an int >= 0; got {v!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        _pos("--lr", self.lr, float)
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be a float >= 0; got {self.weight_decay}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"--gamma must be a float in (0, 1]; got {self.gamma}")
        if not 0.0 < self.warmup_factor <= 1.0:
            raise ConfigError(f"--warmup-factor must be a float in (0, 1]; got {self.warmup_factor}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup-epochs must be >= 0; got {self.warmup_epochs}")
        if any(m <= 0 for m in self.milestones) or sorted(self.milestones) != list(self.milestones):
            raise ConfigError(f"--milestones must be increasing positive epochs; got {self.milestones}")
        if self.p < 2:
            raise ConfigError(f"--ids-per-batch must be an int >= 2; got {self.p}")
        _pos("--images-per-id", self.k, int)
        return self


def _pos(flag: str, v: Any, kind: type) -> None:
    if not isinstance(v, (int, float) if kind is float else int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"{flag} must be a positive {kind.__name__}; got {v!r}")
