"""The options of every training method: one dataclass each, the only place their defaults live.

A method's class names its dataclass (``Options = PseudoOptions``); `get_method` builds it
from a dict (unknown names are an error naming the method) or takes it as it is, then calls
``validate()``: the dataclass's ``CONSTRAINTS`` table through `check_params`, plus any
check that spans several fields. The module imports no torch, so the CLI can show these
defaults in ``--help``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, Options, check_params

_WEIGHT = [Interval(float, 0, None)]
_UNIT = [Interval(float, 0, 1)]
MEMORY_STARTS = ("mdl", "warmup")  # MarOptions.memory_start
CML_TARGETS = ("batch", "cameras")  # MarOptions.cml_target


def require_a_weight(options, a: str, b: str, why: str) -> None:
    """`ConfigError` when loss weights ``a`` and ``b`` of ``options`` are both 0."""
    if getattr(options, a) == 0 and getattr(options, b) == 0:
        raise ConfigError(f"{a} and {b} are both 0; {why} (give one of them a weight > 0)")


@dataclass
class MethodOptions:
    """Base of the option dataclasses; subclasses add fields and ``CONSTRAINTS`` entries."""

    CONSTRAINTS: ClassVar[dict[str, list]] = {}

    def validate(self) -> "MethodOptions":
        check_params(self, self.CONSTRAINTS)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


@dataclass
class NoOptions(MethodOptions):
    """A method without settings."""


@dataclass
class LossOptions(MethodOptions):
    """The BoT objective (Luo et al., CVPR-W 2019): ``ce_weight`` x label-smoothed CE (eps
    ``label_smooth``) + ``triplet_weight`` x batch-hard triplet (``margin``; soft-plus with
    ``soft_margin``) + ``center_weight`` x centre loss (Wen et al. 2016; 0 = off), whose
    centres move by SGD at ``center_lr``."""

    ce_weight: float = 1.0
    label_smooth: float = 0.1
    triplet_weight: float = 1.0
    margin: float = 0.3
    soft_margin: bool = False
    center_weight: float = 0.0
    center_lr: float = 0.5

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "ce_weight": _WEIGHT, "triplet_weight": _WEIGHT, "center_weight": _WEIGHT, "margin": _WEIGHT,
        "label_smooth": [Interval(float, 0, 1, closed="left")], "soft_margin": ["boolean"],
        "center_lr": [Interval(float, 0, None, closed="neither")],
    }

    def validate(self) -> "LossOptions":
        super().validate()
        require_a_weight(self, "ce_weight", "triplet_weight", "nothing would be learnt")
        return self


@dataclass
class SupervisedOptions(LossOptions):
    """`LossOptions` plus RBNet's terms (eq. 4), used with ``--arch rbnet``: ``mse_weight``
    l3 (< 0: automatic, l3 MSE ~ l2 triplet), ``id2_weight`` l4, ``triplet2_weight`` l5,
    ``heatmap_sigma`` (target Gaussian, heat-map pixels) and ``pose_min_score`` (keypoints
    scoring at or below it are masked)."""

    mse_weight: float = -1.0
    id2_weight: float = 1.0
    triplet2_weight: float = 1.0
    heatmap_sigma: float = 2.0
    pose_min_score: float = 0.3

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        **LossOptions.CONSTRAINTS, "mse_weight": [Interval(float, None, None)],
        "id2_weight": _WEIGHT, "triplet2_weight": _WEIGHT,
        "heatmap_sigma": [Interval(float, 0, None, closed="neither")],
        "pose_min_score": [Interval(float, 0, 1, closed="left")],
    }


@dataclass
class PseudoOptions(LossOptions):
    """The BoT objective on the pseudo-labels (`LossOptions`)."""


@dataclass
class KDOptions(LossOptions):
    """`LossOptions` with the centre loss on (0.0035, Chen et al. 2022, eq. 7), plus the KD
    weight blend ``W = (1 - mu) W + mu W_int`` every ``kd_every`` epochs."""

    center_weight: float = 0.0035
    kd_every: int = 5
    mu: float = 0.5

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        **LossOptions.CONSTRAINTS, "kd_every": [Interval(int, 1, None)],
        "mu": [Interval(float, 0, 1, closed="right")],
    }


@dataclass
class JointOptions(LossOptions):
    """`LossOptions` with the paper's margin 0.5, plus ``theta`` x the source-vs-target
    triplet (domain connectedness, LSTM-UDA 2021, eq. 3)."""

    margin: float = 0.5
    theta: float = 0.3

    CONSTRAINTS: ClassVar[dict[str, list]] = {**LossOptions.CONSTRAINTS, "theta": _WEIGHT}


@dataclass
class CamStyleOptions(JointOptions):
    """The camera-style training of LSTM-UDA 2021 (eq. 4): ``ce_weight`` x
    label-smoothed CE on the source + ``theta`` x L_D, the batch-hard triplet (``margin``
    0.5) over source u target u styled target with every source-target pair a negative
    (eq. 3). ``triplet_weight`` adds per-domain triplets (source ids; target classes) on top;
    eq. 4 has none (0), as L_D's union triplet already holds both."""

    triplet_weight: float = 0.0


@dataclass
class MMTOptions(MethodOptions):
    """Mutual Mean-Teaching (Ge et al., ICLR 2020): EMA momentum ``alpha`` of the mean nets
    (eq. 5), soft-CE weight ``soft_ce_weight`` (lambda_id) and soft-triplet weight
    ``soft_tri_weight`` (lambda_tri) of eq. 12, CE label smoothing ``label_smooth``.
    ``fresh_optimizer``: each round (one ``reid finetune`` call, one clustering) starts a new
    Adam, as the public MMT code builds one after every re-clustering
    (``examples/mmt_train_dbscan.py``); False continues the previous round's moments for
    every parameter but the re-initialised classifier."""

    alpha: float = 0.999
    soft_ce_weight: float = 0.5
    soft_tri_weight: float = 0.8
    label_smooth: float = 0.1
    fresh_optimizer: bool = True

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "alpha": [Interval(float, 0, 1, closed="left")], "soft_ce_weight": _UNIT,
        "soft_tri_weight": _UNIT, "label_smooth": [Interval(float, 0, 1, closed="left")],
        "fresh_optimizer": ["boolean"],
    }


@dataclass
class AgentsOptions(MethodOptions):
    """MAR's reference pretraining (Yu et al., CVPR 2019, sec. 3.4): the agent-learning
    cross-entropy L_AL over unit-norm agents, one per reference identity, at ``scale`` s."""

    scale: float = 30.0

    CONSTRAINTS: ClassVar[dict[str, list]] = {"scale": [Interval(float, 0, None, closed="neither")]}


@dataclass
class MarOptions(AgentsOptions):
    """MAR (Yu et al., CVPR 2019; docs/papers.md section 2) with its public run's values:
    L = L_MDL + ``lambda_1`` L_CML + ``lambda_2`` (L_AL + ``beta`` L_RJ), soft multilabels at
    ``scale``, RJ ``rj_margin``, MDL ``mining_ratio`` and its agreement threshold's running
    average (``threshold_momentum``), each target image's soft multilabel kept as a running
    average (``memory_momentum``) for MDL, which starts after ``mdl_warmup_epochs``.
    ``memory_start``: 'mdl' fills that memory from the epoch MDL starts (the MAR code: no
    labels of the warm-up network), 'warmup' from the first epoch on. ``cml_target``: the
    CML target of each camera's mean and std, 'batch' (the whole batch's, the paper's text)
    or 'cameras' (the mean over the batch's cameras of their means and stds, the MAR code)."""

    lambda_1: float = 2e-4
    lambda_2: float = 50.0
    beta: float = 0.2
    rj_margin: float = 1.0
    mining_ratio: float = 0.005
    threshold_momentum: float = 0.1
    memory_momentum: float = 0.1
    mdl_warmup_epochs: int = 1
    memory_start: str = "mdl"
    cml_target: str = "batch"

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        **AgentsOptions.CONSTRAINTS, "lambda_1": _WEIGHT, "lambda_2": _WEIGHT, "beta": _WEIGHT,
        "rj_margin": [Interval(float, 0, None, closed="neither")],
        "mining_ratio": [Interval(float, 0, 1, closed="right")],
        "threshold_momentum": _UNIT, "memory_momentum": [Interval(float, 0, 1, closed="right")],
        "mdl_warmup_epochs": [Interval(int, 0, None)],
        "memory_start": [Options(MEMORY_STARTS)], "cml_target": [Options(CML_TARGETS)],
    }


@dataclass
class MrdaOptions(MethodOptions):
    """MRDA (Zhang et al. 2023, eq. 23; docs/papers.md section 3): L = ``id_weight`` x
    label-smoothed ID (xi ``label_smooth``, eq. 18) + ``hc_weight`` x hetero-centre triplet
    (margin ``rho``, eq. 20) + ``mc_weight`` x modality correlation consistency (eqs. 21-22) +
    ``ac_weight`` x region centre loss (eq. 7). ``mask``: the mask-reconstructed copy x_M+ of
    every image goes through the network too (eqs. 1-3; off: no x_M+ and no region term). The
    paper weighs every term 1 and gives no rho; 0.3 is Liu et al.'s (its ref. [19]).
    ``hc_reduction``: the hetero-centre terms of the 2P anchor centres summed ('sum', eq. 20 as
    written) or averaged ('mean', Liu et al.'s code, which the paper's weight 1 implies)."""

    id_weight: float = 1.0
    label_smooth: float = 0.1
    hc_weight: float = 1.0
    rho: float = 0.3
    mc_weight: float = 1.0
    ac_weight: float = 1.0
    mask: bool = True
    hc_reduction: str = "sum"

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "id_weight": _WEIGHT, "hc_weight": _WEIGHT, "mc_weight": _WEIGHT, "ac_weight": _WEIGHT,
        "rho": _WEIGHT, "label_smooth": [Interval(float, 0, 1, closed="left")], "mask": ["boolean"],
        "hc_reduction": [Options(("sum", "mean"))],
    }

    def validate(self) -> "MrdaOptions":
        super().validate()
        require_a_weight(self, "id_weight", "hc_weight", "nothing would separate identities")
        return self
