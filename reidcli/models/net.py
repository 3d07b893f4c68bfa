"""`ReidNet`: a backbone plus the re-ID head every method trains, built from a `ModelConfig`.

Head (each part a config switch): optional CBAM after layer2/3/4 -> pooling (avg / GeM /
avg+max) of layer4, or of layer1+layer3+layer4 concatenated (multi-level, Zhang et al. 2020) ->
optional FC to ``embed_dim`` (0 keeps the pooled size, the fused one with multi-level) ->
BNNeck (Luo et al., "Bag of Tricks", CVPRW 2019: the triplet loss sees the feature before
BN, the classifier and inference the one after) -> dropout -> classifier.
An optional bi-LSTM local branch runs beside the global one (LSTM-UDA 2021).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.models.attention import CBAM
from reidcli.models.config import ModelConfig
from reidcli.models.lstm_branch import LSTMBranch
from reidcli.models.pooling import build_pool
from reidcli.models.registry import MODELS
from reidcli.utils.errors import ConfigError

Output = Union[torch.Tensor, dict[str, torch.Tensor]]


def fused_dim(channels) -> int:
    """Size of the multi-level feature: layer1, layer3 and layer4 pooled and concatenated
    (Zhang et al. 2020, sec. 2.3 step 3: the last layer takes the fused dimension)."""
    return channels[1] + channels[3] + channels[4]


def _bnneck(dim: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)  # BoT: no shift, so the classifier sees a centred feature
    return bn


def _classifier(dim: int, num_classes: int) -> nn.Linear:
    fc = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, std=0.001)
    return fc


class ReidNet(nn.Module):
    """Backbone + re-ID head.

    In training mode ``forward`` returns a dict: ``feat`` (pooled, before BN: the triplet
    feature), ``bn_feat`` (after BNNeck), ``logits`` (when ``num_classes`` > 0), and for the
    LSTM branch ``local_feat`` / ``local_logits``. In eval mode it returns the [N, feat_dim]
    inference embedding (after BN with a BNNeck, L2-normalised when ``feat_norm``).
    """

    def __init__(self, cfg: ModelConfig, backbone: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        ch = backbone.channels
        self.attention = (
            nn.ModuleList([CBAM(ch[2]), CBAM(ch[3]), CBAM(ch[4])]) if cfg.attention else None
        )
        self.pool = build_pool(cfg.pooling, cfg.gem_p)
        pooled = fused_dim(ch) if cfg.multilevel else ch[4]
        self.feat_dim = cfg.embed_dim or pooled
        self.reduce = None
        if cfg.embed_dim:
            self.reduce = nn.Linear(pooled, self.feat_dim)
            nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out")
            nn.init.zeros_(self.reduce.bias)
        self.bnneck = _bnneck(self.feat_dim) if cfg.neck == "bnneck" else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.local = self.local_bn = None
        if cfg.lstm_branch:
            self.local = LSTMBranch(ch[4], cfg.lstm_hidden, cfg.local_dim)
        self.classifier = self.local_classifier = None
        if cfg.num_classes:
            self._make_classifiers(cfg.num_classes)

    # -- building blocks -------------------------------------------------------------
    def _make_classifiers(self, num_classes: int) -> None:
        self.classifier = _classifier(self.feat_dim, num_classes)
        if self.local is not None:
            # created with its classifier so no parameter goes unused (DDP) without one
            if self.local_bn is None:
                self.local_bn = _bnneck(self.cfg.local_dim)
            self.local_classifier = _classifier(self.cfg.local_dim, num_classes)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(stem, layer1, ..., layer4) outputs, with attention applied after layer2/3/4."""
        maps = [self.backbone.stem(x)]
        for i, layer in enumerate(self.backbone.layers()):
            y = layer(maps[-1])
            if self.attention is not None and i >= 1:
                y = self.attention[i - 1](y)
            maps.append(y)
        return maps

    def global_feat(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """The pooled (and reduced) global feature, before BNNeck."""
        if self.cfg.multilevel:
            feat = torch.cat([self.pool(maps[1]), self.pool(maps[3]), self.pool(maps[4])], 1)
        else:
            feat = self.pool(maps[4])
        return self.reduce(feat) if self.reduce is not None else feat

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Output:
        maps = self.feature_maps(x)
        feat = self.global_feat(maps)
        bn_feat = self.bnneck(feat) if self.bnneck is not None else feat
        if not self.training:
            return F.normalize(bn_feat, dim=1) if self.cfg.feat_norm else bn_feat
        out = {"feat": feat, "bn_feat": bn_feat}
        if self.classifier is not None:
            out["logits"] = self.classifier(self.dropout(bn_feat))
        if self.local is not None:
            local = self.local(maps[4])
            out["local_feat"] = local
            if self.local_classifier is not None:
                out["local_logits"] = self.local_classifier(self.dropout(self.local_bn(local)))
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The eval-mode [N, feat_dim] embedding, whatever mode the module is in."""
        was = self.training
        self.eval()
        try:
            return self(x)
        finally:
            self.train(was)

    # -- for training methods ----------------------------------------------------------
    def reset_classifier(self, num_classes: int, weight: Optional[torch.Tensor] = None) -> None:
        """Replace the classifier(s) with ``num_classes`` outputs (0 removes them).

        ``weight`` [num_classes, feat_dim] (e.g. cluster centres, as MMT / Cluster-Contrast
        initialise the classifier) is L2-normalised row-wise and copied in.
        """
        if num_classes < 0:
            raise ConfigError(f"num_classes must be an int >= 0; got {num_classes}")
        if weight is not None and tuple(weight.shape) != (num_classes, self.feat_dim):
            raise ConfigError(
                f"classifier init weight is {tuple(weight.shape)} but the model needs "
                f"({num_classes}, {self.feat_dim}); pass one centre per class of the "
                "model's feature dimension"
            )
        ref = next(self.parameters())
        self.classifier = self.local_classifier = None
        self.cfg = dataclasses.replace(self.cfg, num_classes=num_classes)
        if num_classes == 0:
            self.local_bn = None
            return
        self._make_classifiers(num_classes)
        if weight is not None:
            with torch.no_grad():
                self.classifier.weight.copy_(F.normalize(weight.detach().float(), dim=1))
        self.to(device=ref.device, dtype=ref.dtype)

    def param_groups(self, base_lr: float, weight_decay: float = 5e-4) -> list[dict]:
        """Optimizer groups: no weight decay on norms, biases and GeM's p (as fast-reid)."""
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        return [
            {"params": decay, "lr": base_lr, "weight_decay": weight_decay},
            {"params": no_decay, "lr": base_lr, "weight_decay": 0.0},
        ]


def build_model(cfg: ModelConfig, load_pretrained: bool = True) -> ReidNet:
    """Validate ``cfg`` and build the network.

    ``load_pretrained=False`` skips ``cfg.pretrained`` (use it when the weights come from a
    checkpoint, so 'imagenet' in a recorded config needs no download).
    """
    cfg.validate()
    builder = MODELS.get(cfg.arch)
    if hasattr(builder, "build_net"):  # an arch that is a whole network (e.g. 'rbnet')
        return builder.build_net(cfg, load_pretrained)
    pretrained = cfg.pretrained if load_pretrained else "none"
    backbone = builder(last_stride=cfg.last_stride, pretrained=pretrained)
    return ReidNet(cfg, set_stem_relu(backbone, cfg.stem_relu, cfg.arch))


def build_backbone(name: str, cfg: ModelConfig, load_pretrained: bool = True) -> nn.Module:
    """The registered backbone ``name`` at ``cfg``'s last stride (and stem ReLU), with
    ``cfg.pretrained`` weights unless ``load_pretrained`` is False (for whole networks built
    over a ResNet)."""
    pretrained = cfg.pretrained if load_pretrained else "none"
    return set_stem_relu(MODELS.get(name)(last_stride=cfg.last_stride, pretrained=pretrained), cfg.stem_relu, name)


def set_stem_relu(backbone: nn.Module, on: bool, arch: str) -> nn.Module:
    """``backbone`` with (``on``, He et al. 2016) or without the ReLU between the stem's BN
    and its max-pool. Without is the MMT code's ResNet (Ge et al., ICLR 2020,
    ``mmt/models/resnet.py``: ``base = conv1, bn1, maxpool, layer1..4``); only a ResNet stem
    (``conv1``, ``bn1``, ``relu``, ``maxpool``; the blocks keep their own ReLUs) has one.
    Parameters are unchanged, so state dicts load either way."""
    if on:
        return backbone
    if not (isinstance(getattr(backbone, "relu", None), (nn.ReLU, nn.Identity)) and hasattr(backbone, "bn1")):
        from reidcli.utils.params import ParamError

        raise ParamError("stem_relu", f"off applies to ResNet backbones only; arch {arch!r} has no ResNet stem")
    backbone.relu = nn.Identity()
    return backbone


def register_network(name: str, build_net) -> None:
    """Register arch ``name`` as a whole network: `build_model` calls ``build_net(cfg,
    load_pretrained)``; the registry's builder itself gives its default ResNet-50."""

    def entry(last_stride: int = 2, pretrained: str = "none") -> nn.Module:
        return MODELS.get("resnet50")(last_stride=last_stride, pretrained=pretrained)

    entry.__name__ = entry.__qualname__ = name
    entry.build_net = build_net
    MODELS.add(name, entry)
