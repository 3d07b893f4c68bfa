"""The model configuration: everything needed to rebuild a network, recorded in checkpoints.

`ModelConfig` is a plain dataclass so a checkpoint stores ``dataclasses.asdict(cfg)`` and
``ModelConfig(**d)`` rebuilds it. `validate()` checks every field against ``CONSTRAINTS``
(`reidcli.utils.params`): one-line, scikit-learn-shaped messages naming the field, which
the CLI shows as its flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, Options, Satisfies, check_params

POOLINGS = ("avg", "gem", "avgmax")
NECKS = ("bnneck", "none")


@dataclass
class ModelConfig:
    """How to build a `ReidNet`.

    Attributes:
        arch: backbone name in `MODELS` ('resnet50', 'tiny', ...).
        pretrained: 'none', 'imagenet' or a path to a state dict.
        last_stride: stride of layer4 (1 doubles the final map, as in BoT/Luo et al. 2019).
        stem_relu: the ReLU after the stem's BN of a ResNet (off: the MMT code's ResNet,
            ``conv1, bn1, maxpool``; ResNet backbones only).
        pooling: 'avg', 'gem' (generalised mean, Radenovic et al. 2018) or 'avgmax' (sum).
        gem_p: initial GeM exponent (learnable).
        neck: 'bnneck' (BN between feature and classifier, Luo et al. 2019) or 'none'.
        embed_dim: 0 keeps the pooled dimension (layer4's channels, or with ``multilevel``
            layer1's + layer3's + layer4's), else an FC maps the pooled feature to this size.
        attention: CBAM channel + spatial attention after layer2/3/4 (Chen et al. 2022).
        multilevel: pooled layer1+layer3+layer4 concatenated (Zhang et al. 2020); checkpoints
            of version <= 2 always had an FC to layer4's size after it (read as ``embed_dim``).
        lstm_branch: bi-LSTM local branch over 3 horizontal stripes (LSTM-UDA 2021).
        lstm_hidden: hidden size of each LSTM direction.
        local_dim: size of the local branch's FC embedding (its triplet feature).
        dropout: dropout before the classifier(s), training only.
        num_classes: classifier size; 0 means no classifier.
        feat_norm: L2-normalise the inference embedding.
        rbnet: RBNet settings for arch 'rbnet' (keys of `reidcli.models.rbnet.RBNetOptions`).
        mrda: MRDA settings for arch 'mrda' (keys of `reidcli.models.mrda.MrdaNetOptions`).
    """

    arch: str = "resnet50"
    pretrained: str = "none"
    last_stride: int = 1
    stem_relu: bool = True
    pooling: str = "avg"
    gem_p: float = 3.0
    neck: str = "bnneck"
    embed_dim: int = 0
    attention: bool = False
    multilevel: bool = False
    lstm_branch: bool = False
    lstm_hidden: int = 256
    local_dim: int = 128
    dropout: float = 0.0
    num_classes: int = 0
    feat_norm: bool = False
    rbnet: dict[str, Any] = field(default_factory=dict)
    mrda: dict[str, Any] = field(default_factory=dict)

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "pretrained": [Satisfies(lambda v: isinstance(v, str) and v != "", "'imagenet', 'none' or a path")],
        "last_stride": [Options((1, 2))], "pooling": [Options(POOLINGS)], "neck": [Options(NECKS)],
        "gem_p": [Interval(float, 1, None)], "embed_dim": [Interval(int, 0, None)],
        "num_classes": [Interval(int, 0, None)], "dropout": [Interval(float, 0, 1, closed="left")],
        "lstm_hidden": [Interval(int, 1, None)], "local_dim": [Interval(int, 1, None)],
        "attention": ["boolean"], "multilevel": ["boolean"], "lstm_branch": ["boolean"],
        "feat_norm": ["boolean"], "stem_relu": ["boolean"], "rbnet": [dict], "mrda": [dict],
    }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Rebuild from a checkpoint's dict; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(
                f"model config has unknown keys {extra}; the checkpoint was written by a "
                "newer reidcli, upgrade to read it"
            )
        return cls(**d)

    def validate(self) -> "ModelConfig":
        """Raise `ConfigError` on the first bad field (an unknown arch with a did-you-mean);
        returns self for chaining."""
        from reidcli.models.registry import MODELS

        MODELS.get(self.arch)
        check_params(self, self.CONSTRAINTS)
        return self


def min_input_divisor(cfg: ModelConfig) -> int:
    """Total stride of the backbone: input height and width must be multiples of it."""
    return 32 if cfg.last_stride == 2 else 16


def check_input_size(cfg: ModelConfig, height: int, width: int) -> None:
    """Reject input sizes the backbone cannot take cleanly (one-line `ConfigError`)."""
    div = min_input_divisor(cfg)
    for flag, v in (("--height", height), ("--width", width)):
        if not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{flag} must be a positive int; got {v!r}")
        if v % div:
            lo, hi = max(div, v // div * div), (v // div + 1) * div
            raise ConfigError(
                f"{flag} {v} must be a multiple of {div} for {cfg.arch} with "
                f"--last-stride {cfg.last_stride}; use {lo} or {hi}"
            )
    if cfg.lstm_branch and height // div < 3:
        raise ConfigError(
            f"--height {height} gives a {height // div}-row feature map but the LSTM branch "
            f"needs 3 stripes; use --height {3 * div} or more"
        )
