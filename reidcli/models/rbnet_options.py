"""`RBNetOptions`: the ``rbnet`` dict of a `ModelConfig` (arch ``rbnet``), torch-free so
``reid pretrain --help`` can show its defaults (the network is `reidcli.models.rbnet`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from reidcli.models.registry import MODELS
from reidcli.utils.errors import ConfigError

K = 17  # COCO keypoints
SCALES = ("conv1", "layer1", "layer2", "layer3", "layer4")
DEFAULT_BLOCKS = (2, 3, 5, 2)  # re-layer1, re-layer2, re-layer3, re-layer4 (paper Table 1)
MASKS = ("sigmoid", "sum")
FEATURES = ("global", "masked", "both")
MASK_SOURCES = ("heatmaps", *SCALES)
MASK_PATHS = ("paper", "simple")


@dataclass
class RBNetOptions:
    """The ``rbnet`` dict of a `ModelConfig` (each key a ``reid pretrain --rb-*`` flag).

    Attributes:
        backbone: the ResNet in `MODELS` ('resnet50' as the paper; 'tiny' = ResNet-18 and
            'resnet18_half' for CPU runs, with basic blocks: the re-layers still use
            bottlenecks, their widths follow the backbone's channels).
        fuse: scales fused into the heat-maps (subset of conv1, layer1..layer4).
        mask_from: what makes M(x): a scale's reverse output ('layer1' = re-layer1, the
            paper's best) or 'heatmaps' (the fused 17 maps).
        mask_path: 'paper' (change_channel mask, reverse features fused into backbone 2,
            separate BN for the masked pass) or 'simple' (see the module docstring).
        mask: 'simple' path only: 'sigmoid' = sigmoid(sum of the 17 maps) (soft: background
            ~0.5) or 'sum' = the non-negative sum divided by its per-image maximum.
        shared: backbone 2 shares backbone 1's weights (False: a separate copy).
        feature: inference feature: 'global', 'masked' or 'both' (concatenated).
        blocks: bottleneck blocks in re-layer1..re-layer4 (paper: 2, 3, 5, 2).
    """

    backbone: str = "resnet50"
    fuse: list[str] = field(default_factory=lambda: ["conv1", "layer1"])
    mask_from: str = "layer1"
    mask_path: str = "paper"
    mask: str = "sigmoid"
    shared: bool = True
    feature: str = "global"
    blocks: list[int] = field(default_factory=lambda: list(DEFAULT_BLOCKS))

    @classmethod
    def from_dict(cls, d: Optional[dict[str, Any]]) -> "RBNetOptions":
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"unknown RBNet option(s) {extra}; known: {sorted(known)}")
        if isinstance(d.get("fuse"), str):
            d["fuse"] = [s.strip() for s in d["fuse"].split(",") if s.strip()]
        return cls(**d).validate()

    def validate(self) -> "RBNetOptions":
        MODELS.get(self.backbone)
        if self.backbone in ("rbnet", "mrda", "mobilenet_v2"):
            raise ConfigError(f"--rb-backbone must be a ResNet (resnet50, tiny, ...); got '{self.backbone}'")
        bad = [s for s in self.fuse if s not in SCALES]
        if not self.fuse or bad or len(set(self.fuse)) != len(self.fuse):
            raise ConfigError(f"--rb-fuse must be distinct scales among {', '.join(SCALES)}; "
                              f"got {','.join(self.fuse) or 'nothing'}")
        _one_of("--rb-mask-from", self.mask_from, MASK_SOURCES)
        _one_of("--rb-mask", self.mask, MASKS)
        _one_of("--rb-mask-path", self.mask_path, MASK_PATHS)
        _one_of("--rb-feature", self.feature, FEATURES)
        if len(self.blocks) != 4 or any(int(b) < 1 for b in self.blocks):
            raise ConfigError(f"--rb-blocks must be 4 ints >= 1 (re-layer1..4); got {self.blocks}")
        return self


def _one_of(flag: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")
