"""RBNet: a re-ID network guided by body keypoints through a reverse backbone (arch ``rbnet``).

Yu & Piao, "Reverse backbone net for unsupervised person re-identification", Journal of
Jilin University 2024 (METHODS.md section 1). Three steps (paper Fig. 1):

1. backbone 1 (a ResNet) gives the global feature: GAP -> BNNeck -> ID + triplet loss;
2. the reverse backbone (`reidcli.models.reverse`) learns 17 keypoint heat-maps at half the
   input size from the backbone's stage features (MSE against Gaussian targets, eq. 3);
3. its 17 maps at one scale (re-layer1 by default, the paper's best) become a spatial mask
   M(x) that multiplies the input; "backbone 2" (the same weights by default, or a separate
   copy) embeds x * M(x) into the masked feature: ID2 + triplet2 (eqs. 1-2).

Total loss (eq. 4): L = l1 ID + l2 Tri + l3 MSE + l4 ID2 + l5 Tri2 (see
`reidcli.losses.heatmap.RBNetLoss`). RBNet-specific settings live in ``ModelConfig.rbnet``
(a dict, stored in checkpoints; keys and defaults in `RBNetOptions`).

Train-mode output: ReidNet's ``feat``/``bn_feat``/``logits`` (backbone 1) plus ``heatmaps``
[N, 17, H/2, W/2], ``mask`` [N, 1, H, W] and ``feat2``/``bn_feat2``/``logits2`` (backbone 2
on the masked input). Eval mode returns the inference feature chosen by ``feature``:
``global`` (backbone 1), ``masked`` (backbone 2) or ``both`` (concatenated; 2x the width).
No pose file is needed at inference: the network predicts its own heat-maps.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.models.config import ModelConfig
from reidcli.models.net import (
    ReidNet,
    _bnneck,
    _classifier,
    build_backbone,
    register_network,
)
from reidcli.models.registry import MODELS
from reidcli.models.reverse import DEFAULT_BLOCKS, SCALES, ReverseBackbone
from reidcli.utils.errors import ConfigError

MASKS = ("sigmoid", "sum")
FEATURES = ("global", "masked", "both")
MASK_SOURCES = ("heatmaps", *SCALES)


@dataclass
class RBNetOptions:
    """The ``rbnet`` dict of a `ModelConfig` (each key a ``reid pretrain --rb-*`` flag).

    Attributes:
        backbone: the ResNet in `MODELS` ('resnet50' as the paper; 'tiny' = ResNet-18 and
            'resnet18_half' for CPU runs, with basic blocks: the re-layers still use
            bottlenecks, their widths follow the backbone's channels).
        fuse: scales fused into the heat-maps (subset of conv1, layer1..layer4).
        mask_from: the 17 maps that make M(x): a scale's head ('layer1' = re-layer1, the
            paper's best) or 'heatmaps' (the fused output).
        mask: 'sigmoid' = sigmoid(sum of the 17 maps) (soft: background ~0.5) or 'sum' =
            the non-negative sum divided by its per-image maximum (background ~0).
        shared: backbone 2 shares backbone 1's weights (False: a separate copy).
        feature: inference feature: 'global', 'masked' or 'both' (concatenated).
        blocks: bottleneck blocks in re-layer1..re-layer4 (paper: 2, 3, 5, 2).
    """

    backbone: str = "resnet50"
    fuse: list[str] = field(default_factory=lambda: ["conv1", "layer1"])
    mask_from: str = "layer1"
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
        if self.backbone == "rbnet":
            raise ConfigError("--rb-backbone must be a ResNet (resnet50, tiny, ...); got 'rbnet'")
        bad = [s for s in self.fuse if s not in SCALES]
        if not self.fuse or bad or len(set(self.fuse)) != len(self.fuse):
            raise ConfigError(f"--rb-fuse must be distinct scales among {', '.join(SCALES)}; "
                              f"got {','.join(self.fuse) or 'nothing'}")
        _one_of("--rb-mask-from", self.mask_from, MASK_SOURCES)
        _one_of("--rb-mask", self.mask, MASKS)
        _one_of("--rb-feature", self.feature, FEATURES)
        if len(self.blocks) != 4 or any(int(b) < 1 for b in self.blocks):
            raise ConfigError(f"--rb-blocks must be 4 ints >= 1 (re-layer1..4); got {self.blocks}")
        return self


def _one_of(flag: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")


class RBNet(ReidNet):
    """`ReidNet` (backbone 1 and its head) + reverse backbone + backbone-2 head."""

    def __init__(self, cfg: ModelConfig, backbone: nn.Module):
        if cfg.lstm_branch:
            raise ConfigError("--lstm-branch cannot be combined with --arch rbnet")
        self.rb = RBNetOptions.from_dict(cfg.rbnet)
        super().__init__(cfg, backbone)
        self.head_dim = self.feat_dim
        if self.rb.feature == "both":
            self.feat_dim = 2 * self.head_dim
        if not cfg.num_classes:
            self.classifier2 = None
        extra = [] if self.rb.mask_from == "heatmaps" else [self.rb.mask_from]
        self.reverse = ReverseBackbone(backbone.channels, self.rb.fuse, extra, self.rb.blocks)
        self.backbone2 = None if self.rb.shared else copy.deepcopy(backbone)
        self.bnneck2 = _bnneck(self.head_dim) if cfg.neck == "bnneck" else None

    # -- building blocks -------------------------------------------------------------
    def _make_classifiers(self, num_classes: int) -> None:
        dim = getattr(self, "head_dim", self.feat_dim)  # ReidNet.__init__ calls this first
        self.classifier = _classifier(dim, num_classes)
        self.classifier2 = _classifier(dim, num_classes)

    def stages(self, x: torch.Tensor, backbone: Optional[nn.Module] = None) -> list[torch.Tensor]:
        """(conv1 before the max-pool, layer1, ..., layer4), attention as in `ReidNet`."""
        bb = backbone or self.backbone
        c1 = bb.relu(bb.bn1(bb.conv1(x)))
        maps = [c1, bb.maxpool(c1)]
        for i, layer in enumerate(bb.layers()):
            y = layer(maps[-1])
            if self.attention is not None and i >= 1:
                y = self.attention[i - 1](y)
            maps.append(y)
        return [maps[0], *maps[2:]]

    def heatmap_size(self, x: torch.Tensor) -> tuple[int, int]:
        return (x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2

    def make_mask(self, rev: dict[str, torch.Tensor], heat: torch.Tensor,
                  size: Sequence[int]) -> torch.Tensor:
        """M(x) [N, 1, *size] in [0, 1] from the 17 maps of ``mask_from``."""
        maps = heat if self.rb.mask_from == "heatmaps" else self.reverse.maps(rev, self.rb.mask_from)
        s = maps.float().sum(1, keepdim=True)
        if self.rb.mask == "sigmoid":
            m = torch.sigmoid(s)
        else:
            s = F.relu(s)
            m = s / s.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        return F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False).to(heat.dtype)

    def _head2(self, xm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stages = self.stages(xm, self.backbone2)
        feat2 = self.global_feat(stages)
        return feat2, (self.bnneck2(feat2) if self.bnneck2 is not None else feat2)

    def reverse_pass(self, x: torch.Tensor, stages: Optional[list] = None) -> dict[str, torch.Tensor]:
        """Heat-maps [N, 17, H/2, W/2] and mask [N, 1, H, W] (plus the stage maps used)."""
        stages = stages if stages is not None else self.stages(x)
        rev = self.reverse(stages)
        heat = self.reverse.heatmaps(rev, self.heatmap_size(x))
        return {"stages": stages, "heatmaps": heat, "mask": self.make_mask(rev, heat, x.shape[-2:])}

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        stages = self.stages(x)
        feat = self.global_feat(stages)
        bn_feat = self.bnneck(feat) if self.bnneck is not None else feat
        if not self.training:
            return self._embedding(x, stages, bn_feat)
        rp = self.reverse_pass(x, stages)
        feat2, bn_feat2 = self._head2(x * rp["mask"])
        out = {"feat": feat, "bn_feat": bn_feat, "heatmaps": rp["heatmaps"], "mask": rp["mask"],
               "feat2": feat2, "bn_feat2": bn_feat2}
        if self.classifier is not None:
            out["logits"] = self.classifier(self.dropout(bn_feat))
            out["logits2"] = self.classifier2(self.dropout(bn_feat2))
        return out

    def _embedding(self, x, stages, bn_feat) -> torch.Tensor:
        if self.rb.feature != "global":
            _, bn2 = self._head2(x * self.reverse_pass(x, stages)["mask"])
            bn_feat = bn2 if self.rb.feature == "masked" else torch.cat([bn_feat, bn2], 1)
        return F.normalize(bn_feat, dim=1) if self.cfg.feat_norm else bn_feat

    def masked_forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone 2 on ``x * mask`` with a given mask: ``feat``, ``bn_feat``, ``logits``.

        MMT with RBNet (paper Fig. 2, eqs. 7-8): a mean net embeds the input masked by its
        network's M(x), f = F(M(x | θ) x | E[θ]).
        """
        feat2, bn2 = self._head2(x * mask)
        out = {"feat": feat2, "bn_feat": bn2}
        if self.classifier2 is not None:
            out["logits"] = self.classifier2(self.dropout(bn2))
        return out

    @torch.no_grad()
    def predict_heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 17, H/2, W/2] heat-maps in eval mode (for ``--save-heatmaps`` / pose)."""
        was = self.training
        self.eval()
        try:
            return self.reverse_pass(x)["heatmaps"]
        finally:
            self.train(was)

    # -- for training methods ----------------------------------------------------------
    def reset_classifier(self, num_classes: int, weight: Optional[torch.Tensor] = None) -> None:
        """Replace both classifiers; ``weight`` [K, feat_dim] initialises them (with
        ``feature='both'`` its halves go to the global and the masked classifier)."""
        if num_classes < 0:
            raise ConfigError(f"num_classes must be an int >= 0; got {num_classes}")
        if weight is not None and tuple(weight.shape) != (num_classes, self.feat_dim):
            raise ConfigError(f"classifier init weight is {tuple(weight.shape)} but the model needs "
                              f"({num_classes}, {self.feat_dim}); pass one centre per class of the "
                              "model's feature dimension")
        ref = next(self.parameters())
        self.cfg = dataclasses.replace(self.cfg, num_classes=num_classes)
        self.classifier = self.classifier2 = None
        if num_classes == 0:
            return
        self._make_classifiers(num_classes)
        if weight is not None:
            w = weight.detach().float()
            w1, w2 = (w[:, :self.head_dim], w[:, self.head_dim:]) if self.rb.feature == "both" else (w, w)
            with torch.no_grad():
                self.classifier.weight.copy_(F.normalize(w1, dim=1))
                self.classifier2.weight.copy_(F.normalize(w2, dim=1))
        self.to(device=ref.device, dtype=ref.dtype)


def build_rbnet(cfg: ModelConfig, load_pretrained: bool = True) -> RBNet:
    """Build an RBNet from ``cfg`` (arch 'rbnet'; backbone from ``cfg.rbnet['backbone']``)."""
    return RBNet(cfg, build_backbone(RBNetOptions.from_dict(cfg.rbnet).backbone, cfg, load_pretrained))


register_network("rbnet", build_rbnet)  # `build_model` builds the whole network through this


def is_rbnet(net: nn.Module) -> bool:
    """Whether ``net`` (or the module inside a DDP wrapper) is an RBNet."""
    return isinstance(getattr(net, "module", net), RBNet)


def mean_output(mean_net: nn.Module, x: torch.Tensor, student_out: dict) -> dict:
    """A mean net's output in MMT. For RBNet the mean net embeds the input masked by its
    network's mask, f = F(M(x | θ) x | E[θ]) (paper eqs. 7-8, Fig. 2); else ``mean_net(x)``."""
    net = getattr(mean_net, "module", mean_net)
    if isinstance(net, RBNet) and "mask" in student_out:
        return net.masked_forward(x, student_out["mask"].detach())
    return mean_net(x)


def student_output(out: dict) -> dict:
    """A network's output for MMT's losses. For RBNet the (soft) triplet terms use the masked
    feature f(x M(x)) (paper eqs. 9-11) and the (soft) ID terms the global classifier."""
    if "feat2" not in out:
        return out
    return {**out, "feat": out["feat2"]}
