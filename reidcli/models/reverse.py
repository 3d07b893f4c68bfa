"""The reverse backbone of RBNet (Yu & Piao, "Reverse backbone net for unsupervised person
re-identification", J. Jilin Univ. 2024; docs/papers.md section 1, Fig. 1 and Table 1).

From each ResNet stage output (conv1 before the max-pool, layer1..layer4) a 1x1 conv + ReLU
("change_channel") turns the backbone feature into 17 channel groups, one per COCO keypoint.
Mirrored stages re-layer4..re-layer1 (2/5/3/2 bottleneck blocks in re-layer4/3/2/1) run from
the deepest feature back towards the input; the last block of each re-layer upsamples
(bilinear) to the size of the next shallower backbone feature, which is added in (the
"fusion with the features ResNet passes", FPN-style). Every convolution inside the re-layers
is grouped with 17 groups, so keypoint k keeps its own channel group end to end.

Widths: a stage of C backbone channels becomes 17 * max(1, round(C / 17)) reverse channels
(ResNet-50: 64/256/512/1024/2048 -> 68/255/510/1020/2040; ResNet-18 with basic blocks:
64/64/128/256/512 -> 68/68/136/255/510). Bottleneck blocks are used for every backbone
(basic-block ResNets included); their inner width is a quarter of the block's input width,
rounded to whole groups.

Outputs, by the name of the backbone stage they mirror: ``layer4`` .. ``layer1`` (the
re-layer outputs, at the resolution of that layer's input) and ``conv1`` (re-layer1's output
upsampled over the max-pool and fused with the conv1 feature, at half the input size).
A grouped 1x1 head per used scale (``re-conv1`` for ``conv1``) gives 17 maps; the heat-maps
are the grouped 1x1 fusion of the chosen scales, upsampled to half the input size.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidcli.models.rbnet_options import DEFAULT_BLOCKS, K, SCALES  # noqa: F401  (torch-free home)


def input_index(scale: str) -> int:
    """Index into (conv1, layer1, ..., layer4) of the backbone map a scale's reverse output
    mirrors (paper Table 1): conv1's output for ``conv1``, layer k's *input* for ``layerk``."""
    return max(0, SCALES.index(scale) - 1)


def group_width(channels: int) -> int:
    """Reverse width of a stage with ``channels`` backbone channels: whole groups of 17."""
    return K * max(1, round(channels / K))


def _up(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ChangeChannel(nn.Sequential):
    """change_channel: a full 1x1 conv + ReLU from a backbone stage to 17 channel groups."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 1, bias=True), nn.ReLU(inplace=True))


class ReverseBottleneck(nn.Module):
    """A bottleneck block with 17-group convolutions that may upsample instead of stride.

    1x1 (cin -> mid) -> [bilinear upsample to ``size``] -> 3x3 (mid -> mid) -> 1x1
    (mid -> cout), BN after each, ReLU after the first two and after the residual sum; the
    shortcut upsamples and projects with a grouped 1x1 conv when the shape changes (the
    mirror of ResNet's stride-2 conv2 and downsample branch, He et al. 2016).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = K * max(1, round(cin / K / 4))
        self.conv1 = nn.Conv2d(cin, mid, 1, groups=K, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, groups=K, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, groups=K, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.project = None
        if cin != cout:
            self.project = nn.Sequential(nn.Conv2d(cin, cout, 1, groups=K, bias=False),
                                         nn.BatchNorm2d(cout))
        nn.init.zeros_(self.bn3.weight)  # start as identity (Goyal et al. 2017), as torchvision

    def forward(self, x: torch.Tensor, size: Optional[Sequence[int]] = None) -> torch.Tensor:
        size = tuple(size) if size is not None else tuple(x.shape[-2:])
        out = self.relu(self.bn1(self.conv1(x)))
        out = _up(out, size)
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        short = _up(x, size)
        if self.project is not None:
            short = self.project(short)
        return self.relu(out + short)


class ReLayer(nn.Module):
    """``n`` reverse bottlenecks: cin -> cin ... -> cout, the last one upsampling to ``size``."""

    def __init__(self, cin: int, cout: int, n: int):
        super().__init__()
        self.blocks = nn.ModuleList([ReverseBottleneck(cin, cin) for _ in range(n - 1)]
                                    + [ReverseBottleneck(cin, cout)])

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        for b in self.blocks[:-1]:
            x = b(x)
        return self.blocks[-1](x, size)


class ReverseBackbone(nn.Module):
    """change_channel + re-layer4..re-layer1 + grouped heads and multi-scale fusion.

    Args:
        channels: backbone widths of (conv1, layer1, layer2, layer3, layer4).
        fuse: scales fused into the heat-maps (paper's best: conv1 + layer1).
        extra_heads: further scales that need a 17-map head (e.g. the mask source).
        blocks: bottleneck blocks in re-layer1..re-layer4.
    """

    def __init__(self, channels: Sequence[int], fuse: Sequence[str] = ("conv1", "layer1"),
                 extra_heads: Sequence[str] = (), blocks: Sequence[int] = DEFAULT_BLOCKS):
        super().__init__()
        w = [group_width(c) for c in channels]  # conv1, layer1..layer4
        self.widths = tuple(w)
        self.change = nn.ModuleList([ChangeChannel(c, g) for c, g in zip(channels, w)])
        # re-layer k maps layer k's output width back to its input width (w[k] -> w[k-1])
        self.relayers = nn.ModuleList([ReLayer(w[k], w[k - 1], blocks[k - 1]) for k in range(1, 5)])
        self.fuse_scales = tuple(fuse)
        used = list(dict.fromkeys([*fuse, *extra_heads]))
        # re-layer k outputs layer k's *input* width; the conv1 scale keeps conv1's width
        self.out_widths = {s: w[input_index(s)] for s in SCALES}
        self.heads = nn.ModuleDict({s: nn.Conv2d(self.out_widths[s], K, 1, groups=K) for s in used})
        self.fuse = nn.Conv2d(K * len(fuse), K, 1, groups=K)
        for head in self.heads.values():  # near-zero maps at the start (mmpose's final layer)
            nn.init.normal_(head.weight, std=0.001)
            nn.init.zeros_(head.bias)
        nn.init.constant_(self.fuse.weight, 1.0 / len(fuse))  # start as the mean over scales
        nn.init.zeros_(self.fuse.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``feats`` = (conv1 before max-pool, layer1, ..., layer4) -> reverse maps by scale."""
        c = [cc(f) for cc, f in zip(self.change, feats)]
        out: dict[str, torch.Tensor] = {}
        x = c[4]
        for k in (4, 3, 2, 1):
            target = feats[k - 1].shape[-2:] if k > 1 else feats[1].shape[-2:]
            x = self.relayers[k - 1](x, target)
            out[SCALES[k]] = x
            if k > 1:
                x = x + c[k - 1]
        out["conv1"] = _up(out["layer1"], feats[0].shape[-2:]) + c[0]  # the max-pool mirror
        return out

    def maps(self, rev: dict[str, torch.Tensor], scale: str) -> torch.Tensor:
        """The 17 maps of one scale (its grouped 1x1 head; ``re-conv1`` for conv1)."""
        return self.heads[scale](rev[scale])

    def heatmaps(self, rev: dict[str, torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """[N, 17, *size]: the chosen scales' maps, upsampled, fused per keypoint."""
        parts = [_up(self.maps(rev, s), size) for s in self.fuse_scales]
        x = torch.stack(parts, dim=2).flatten(1, 2)  # keypoint-major: group k = k's scales
        return self.fuse(x)


class MaskChannel(nn.Sequential):
    """Paper step 3: a change_channel (1x1 conv + ReLU) from the mask source's channels to the
    one spatial weight map M(x) that multiplies conv1's input. Bias 1 and near-zero weights
    make M(x) ~ 1 at the start, so backbone 2 first sees the image itself."""

    def __init__(self, cin: int):
        super().__init__(nn.Conv2d(cin, 1, 1, bias=True), nn.ReLU())
        nn.init.normal_(self[0].weight, std=0.01)
        nn.init.ones_(self[0].bias)


class Injection(nn.Module):
    """Paper step 3: "the same-layer features of the backbone and the reverse backbone are
    fused into backbone 2". The reverse output of each scale (paper Table 1: ``conv1`` pairs
    with conv1's output, ``layerk`` with layer k's input) goes through a 1x1 conv to the
    backbone's width at that point and is added there. Zero-initialised, so backbone 2 starts
    as the plain masked pass and learns how much reverse feature to take in."""

    def __init__(self, rev_widths: dict[str, int], channels: Sequence[int], scales: Sequence[str]):
        super().__init__()
        self.proj = nn.ModuleDict({s: nn.Conv2d(rev_widths[s], channels[input_index(s)], 1)
                                   for s in scales})
        for conv in self.proj.values():
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, rev: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {s: conv(rev[s]) for s, conv in self.proj.items()}
