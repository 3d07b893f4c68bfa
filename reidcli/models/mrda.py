"""MRDA's two-stream network with dynamic attention (arch ``mrda``; Zhang et al. 2023,
secs. 2.3-2.4; docs/papers.md section 3).

- Two streams (eqs. 5-8): stage 0 (conv1/bn1/max-pool) and stage 1 (layer1) of the ResNet
  are separate for visible and infrared images; stages 2-4 are shared. Each image is routed
  by its modality (0 visible, 1 infrared; a per-image tensor, default all visible).
- Dynamic attention (eqs. 9-16, `DynamicAttention`) on the last feature map f, and the
  feature F = GeM(f) + avg(attended) (GeM p = ``gem_p``, 3 by default, learnable).
- The head is `ReidNet`'s: BNNeck, classifier; eval mode returns the BN feature.

Settings in ``ModelConfig.mrda`` (keys of `MrdaNetOptions`): ``backbone`` (any ResNet of the
registry), ``attn_topk`` (regions kept; the paper gives no value: 8, half the 16 stripes
of a 256x128 input with last stride 1; clamped to the stripes of the map), and the
ablation switches ``two_stream`` (off: one stem for both modalities) and ``attention``
(off: F = GeM(f)).

Train-mode output: ``feat`` (F), ``bn_feat``, ``logits`` and ``stage1`` (the layer1 map,
for the region centre loss). ``forward(x, modality)``; the attribute ``modal = True``
tells callers (`reid features`, the tests) to pass the modality.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from reidcli.models.config import ModelConfig
from reidcli.models.mrda_options import MrdaNetOptions
from reidcli.models.net import ReidNet, build_backbone, register_network
from reidcli.models.pooling import GeM
from reidcli.utils.errors import ConfigError


class DynamicAttention(nn.Module):
    """Dynamic attention (seed eqs. 9-16) on a map f [N, C, H, W]:

        Q, K, V = Conv1x1(f)                           (9)
        Q_avg, K_avg = row (stripe) means of Q, K      (10)  [N, H, C']
        M_aff = Q_avg K_avg^T                          (11)  [N, H, H]
        index = topk stripes of M_aff                  (12)  region score: row sum of M_aff
        Q_index = gather(Q, index)                     (13)  [N, k W, C']
        alpha = softmax(Q_index K^T)                   (14)  [N, k W, H W], over positions
        f_bar = alpha V                                (15)  [N, k W, C]

    Returns avg(f_bar) [N, C] (the mean over the k W attended positions; eq. 16 adds it to
    GeM(f)). Unscaled dot products, as the paper writes them.
    """

    def __init__(self, channels: int, topk: int = 8, reduction: int = 8):
        super().__init__()
        inner = max(1, channels // reduction)
        self.q = nn.Conv2d(channels, inner, 1)
        self.k = nn.Conv2d(channels, inner, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.topk = topk

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q(f), self.k(f), self.v(f)
        n, c, h, w = q.shape
        aff = q.mean(3).transpose(1, 2) @ k.mean(3)  # [N, H, H]
        top = aff.sum(2).topk(min(self.topk, h), dim=1).indices  # [N, k]
        qi = q.permute(0, 2, 3, 1).gather(1, top.view(n, -1, 1, 1).expand(-1, -1, w, c))  # [N, k, W, C']
        alpha = torch.softmax(qi.reshape(n, -1, c) @ k.flatten(2), dim=2)  # [N, kW, HW]
        attended = alpha @ v.flatten(2).transpose(1, 2)  # [N, kW, C]
        return attended.mean(1)


class MrdaNet(ReidNet):
    """Two-stream ResNet (visible: ``backbone``'s stem and layer1; infrared: ``ir``) with
    shared layer2-4, dynamic attention and GeM, then `ReidNet`'s head."""

    modal = True

    def __init__(self, cfg: ModelConfig, backbone: nn.Module):
        for flag, on in (("--attention", cfg.attention), ("--multilevel", cfg.multilevel),
                         ("--lstm-branch", cfg.lstm_branch), ("--embed-dim", cfg.embed_dim)):
            if on:
                raise ConfigError(f"{flag} cannot be combined with --arch mrda")
        self.mr = MrdaNetOptions.from_dict(cfg.mrda)
        super().__init__(cfg, backbone)
        self.pool = GeM(cfg.gem_p)
        self.ir = (nn.ModuleDict({n: copy.deepcopy(getattr(backbone, n)) for n in ("conv1", "bn1", "layer1")})
                   if self.mr.two_stream else None)
        self.dyn_attention = (DynamicAttention(backbone.channels[4], self.mr.attn_topk, self.mr.qk_reduction)
                              if self.mr.attention else None)

    def _stream(self, x: torch.Tensor, infrared: bool) -> torch.Tensor:
        bb = self.backbone
        m = self.ir if infrared else {"conv1": bb.conv1, "bn1": bb.bn1, "layer1": bb.layer1}
        return m["layer1"](bb.maxpool(bb.relu(m["bn1"](m["conv1"](x)))))

    def stage1(self, x: torch.Tensor, modality: torch.Tensor | None = None) -> torch.Tensor:
        """The layer1 map, each image through its modality's stages 0-1 (eqs. 5-6); one
        stream for all without ``two_stream``."""
        if modality is None or self.ir is None:
            return self._stream(x, False)
        modality = modality.to(x.device).view(-1)
        parts, order = [], []
        for m in (0, 1):
            idx = torch.nonzero(modality == m).view(-1)
            if idx.numel():
                parts.append(self._stream(x[idx], m == 1))
                order.append(idx)
        out = torch.cat(parts)
        return out[torch.argsort(torch.cat(order))]

    def feature_maps(self, x: torch.Tensor, modality: torch.Tensor | None = None) -> list[torch.Tensor]:
        maps = [self.stage1(x, modality)]
        for layer in self.backbone.layers()[1:]:
            maps.append(layer(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor, modality: torch.Tensor | None = None):
        maps = self.feature_maps(x, modality)
        f = maps[-1]
        feat = self.pool(f)
        if self.dyn_attention is not None:
            feat = feat + self.dyn_attention(f).float()  # eq. 16
        bn_feat = self.bnneck(feat) if self.bnneck is not None else feat
        if not self.training:
            return torch.nn.functional.normalize(bn_feat, dim=1) if self.cfg.feat_norm else bn_feat
        out = {"feat": feat, "bn_feat": bn_feat, "stage1": maps[0]}
        if self.classifier is not None:
            out["logits"] = self.classifier(self.dropout(bn_feat))
        return out

    def embed(self, x: torch.Tensor, modality: torch.Tensor | None = None) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            return self(x, modality)
        finally:
            self.train(was)


def build_mrda(cfg: ModelConfig, load_pretrained: bool = True) -> MrdaNet:
    """Build MRDA from ``cfg`` (arch 'mrda'; its ResNet from ``cfg.mrda['backbone']``)."""
    return MrdaNet(cfg, build_backbone(MrdaNetOptions.from_dict(cfg.mrda).backbone, cfg, load_pretrained))


register_network("mrda", build_mrda)


def is_modal(net: nn.Module) -> bool:
    """Whether ``net`` (or the module inside a DDP wrapper) routes images by modality."""
    return bool(getattr(getattr(net, "module", net), "modal", False))
