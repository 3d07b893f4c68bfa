"""`TrainConfig`: the engine's settings, shared by every method (and stored in checkpoints).

Defaults follow the MMT source pre-training recipe (Ge et al., ICLR 2020; BoT, Luo et al.
2019): Adam, lr 3.5e-4, weight decay 5e-4, linear warm-up over 10 epochs from 1%, x0.1 at
epochs 40 and 70, 80 epochs, P=16 identities x K=4 images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reidcli.utils.params import Interval, Options, Satisfies, check_params

OPTIMIZERS = ("adam", "sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
_COUNT = [Interval(int, 0, None)]


def _increasing_epochs(v: Any) -> bool:
    return (isinstance(v, (list, tuple)) and all(isinstance(m, int) and m > 0 for m in v)
            and list(v) == sorted(v))


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
        workers: DataLoader worker processes per data stream; None: chosen with ``threads``
            from the cores and the device (`reidcli.utils.resources`), split over the streams.
        threads: intra-op threads; None: the cores less the workers (or OMP_NUM_THREADS).
        cache_images: decode every training image once, before the first step, and keep it
            (resized, uint8) in shared memory (`reidcli.data.cache`); the same results as
            without, refused when it would take over half the available memory.
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
    workers: int | None = None
    threads: int | None = None
    cache_images: bool = False
    grad_clip: float = 0.0
    eval_every: int = 0
    log_every: int = 20

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "epochs": [Interval(int, 1, None)], "iters_per_epoch": _COUNT, "max_iters": _COUNT,
        "stop_after": _COUNT, "images_per_bn": _COUNT, "workers": [None, *_COUNT], "eval_every": _COUNT,
        "threads": [None, Interval(int, 1, None)],
        "optimizer": [Options(OPTIMIZERS)], "schedule": [Options(SCHEDULES)],
        "lr": [Interval(float, 0, None, closed="neither")], "weight_decay": [Interval(float, 0, None)],
        "momentum": [Interval(float, 0, 1)], "gamma": [Interval(float, 0, 1, closed="right")],
        "warmup_epochs": [Interval(float, 0, None)],
        "warmup_factor": [Interval(float, 0, 1, closed="right")],
        "milestones": [Satisfies(_increasing_epochs, "increasing positive epochs, e.g. [40, 70]")],
        "p": [Interval(int, 2, None)], "k": [Interval(int, 1, None)],
        "sync_bn": ["boolean"], "amp": ["boolean"], "deterministic": ["boolean"], "cache_images": ["boolean"],
        "seed": [Interval(int, 0, None)], "grad_clip": [Interval(float, 0, None)],
        "log_every": [Interval(int, 1, None)],
    }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def validate(self) -> "TrainConfig":
        """Raise `ParamError` (a `ConfigError`) on the first bad field; returns self."""
        check_params(self, self.CONSTRAINTS)
        return self


@dataclass
class FinetuneConfig(TrainConfig):
    """`TrainConfig` with the defaults of one adaptation round (``reid finetune``; MMT's
    recipe, Ge et al. ICLR 2020: Adam 3.5e-4 at a constant rate, 400 iterations per epoch,
    16 x 4 batches)."""

    epochs: int = 1
    iters_per_epoch: int = 400
    schedule: str = "constant"
    milestones: list[int] = field(default_factory=list)
    warmup_epochs: float = 0.0
