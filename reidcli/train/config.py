"""`TrainConfig`: the engine's settings, shared by every method (and stored in checkpoints);
`fit_schedule` fits a default warm-up and step milestones to a run shorter than they assume.

Defaults follow the MMT source pre-training recipe (Ge et al., ICLR 2020; BoT, Luo et al.
2019): Adam, lr 3.5e-4, weight decay 5e-4, linear warm-up over 10 epochs from 1%, x0.1 at
epochs 40 and 70, 80 epochs, P=16 identities x K=4 images.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Collection, Optional

from reidcli.utils.params import SEED, Interval, Options, ParamError, Satisfies, check_params

log = logging.getLogger(__name__)

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
        "seed": SEED, "grad_clip": [Interval(float, 0, None)],
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
    16 x 4 batches).

    Attributes:
        weight_decay_all: apply ``weight_decay`` to every trained parameter, norms and biases
            included, as the public MMT code does (``examples/mmt_train_dbscan.py``); off,
            norms and biases get none (fast-reid's groups).
    """

    epochs: int = 1
    iters_per_epoch: int = 400
    schedule: str = "constant"
    milestones: list[int] = field(default_factory=list)
    warmup_epochs: float = 0.0
    weight_decay_all: bool = False

    CONSTRAINTS: ClassVar[dict[str, list]] = {**TrainConfig.CONSTRAINTS, "weight_decay_all": ["boolean"]}


def fit_schedule(cfg: TrainConfig, given: Collection[str] = (),
                 reference: Optional[TrainConfig] = None, announce: bool = True) -> TrainConfig:
    """``cfg`` (validated) with a warm-up and step milestones that fit in its ``epochs``.

    A warm-up of ``epochs`` or more (the learning rate never reaches ``lr``) or, with schedule
    'step', a milestone at or after ``epochs`` (never reached) is scaled to the run when it is
    ``reference``'s value (default: ``cfg``'s class defaults, 10 warm-up epochs and [40, 70] of
    80) and not named in ``given`` (the settings a user gave): the same fraction of ``epochs``
    as of ``reference.epochs``, milestones rounded down to whole epochs (those at 0 dropped,
    repeats merged), with one info line; a default warm-up is scaled along with scaled
    milestones, so that no decay falls inside it. A value that is not the reference's, or is
    given, is a `ParamError` naming it and its bound. A library caller's value equal to the
    default cannot be told from the default, so it is scaled (the ``*_from_settings`` entries
    pass ``given``). ``announce=False`` leaves out the info line (a resumed run, which fits
    the command line only to compare it with the checkpoint's schedule).
    """
    cfg = cfg.validate()
    ref = reference if reference is not None else type(cfg)()
    changes = {}
    milestones = _fit_milestones(cfg, ref, given)
    warmup = _fit_warmup(cfg, ref, given, along=milestones is not None)
    if warmup is not None:
        changes["warmup_epochs"] = warmup
    if milestones is not None:
        changes["milestones"] = milestones
    if changes and announce:
        done = ", ".join(f"{_SCHEDULE_WORDS[k]} {_show(getattr(cfg, k))} -> {_show(v) or 'none'}"
                         for k, v in changes.items())
        log.info("%s: the defaults (for %d epochs) scaled to this %d-epoch run; set %s to choose", done, ref.epochs,
                 cfg.epochs, " / ".join("--" + k.replace("_", "-") for k in changes))
    return dataclasses.replace(cfg, **changes)


_SCHEDULE_WORDS = {"warmup_epochs": "warm-up", "milestones": "step milestones"}


def _show(v: Any) -> str:
    return ",".join(str(m) for m in v) if isinstance(v, list) else f"{v:g}"


def _fit_warmup(cfg: TrainConfig, ref: TrainConfig, given: Collection[str], along: bool) -> Optional[float]:
    """The scaled warm-up when ``cfg``'s is a default as long as the run, or (``along``: the
    default milestones are scaled) a default one, scaled with them so that no decay falls
    inside it; None when it stays."""
    default = "warmup_epochs" not in given and cfg.warmup_epochs == ref.warmup_epochs
    too_long = cfg.warmup_epochs >= cfg.epochs
    if cfg.warmup_epochs <= 0 or not (too_long or (along and default)):
        return None
    scaled = ref.warmup_epochs * cfg.epochs / ref.epochs
    if not default or scaled >= cfg.epochs:
        raise ParamError("warmup_epochs", f"must be less than the run's epochs ({cfg.epochs}): the learning rate "
                                          f"would never reach lr; got {cfg.warmup_epochs:g}")
    return scaled


def _fit_milestones(cfg: TrainConfig, ref: TrainConfig, given: Collection[str]) -> Optional[list[int]]:
    """The scaled step milestones when ``cfg``'s are defaults the run never reaches; None
    when they fit (or the schedule is not 'step')."""
    late = [m for m in cfg.milestones if m >= cfg.epochs]
    if cfg.schedule != "step" or not late:
        return None
    if "milestones" in given or list(cfg.milestones) != list(ref.milestones):
        raise ParamError("milestones", f"must be less than the run's epochs ({cfg.epochs}) with schedule 'step': "
                                       f"{_show(late)} never reached; got {_show(list(cfg.milestones))}")
    scaled = (math.floor(m * cfg.epochs / ref.epochs) for m in ref.milestones)
    return sorted({m for m in scaled if 0 < m < cfg.epochs})


def schedule_reference(kind: type, settings: dict[str, Any]) -> TrainConfig:
    """``kind``'s defaults with the ``epochs``, ``warmup_epochs`` and ``milestones`` of
    ``settings`` (a recipe's): what `fit_schedule` scales from when a recipe set them."""
    return kind(**{k: settings[k] for k in ("epochs", "warmup_epochs", "milestones") if k in settings})
