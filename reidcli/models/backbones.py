"""ResNet backbones (He et al., CVPR 2016) from torchvision, without the ImageNet head.

Each registered builder is ``fn(last_stride=2, pretrained="none") -> ResNetBackbone``.
Parameter names match torchvision's (``conv1.weight``, ``layer1.0.bn1.weight``, ...) so
ImageNet state dicts load unchanged.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from torchvision.models import resnet as tvr

from reidcli.models.pretrained import load_backbone_weights
from reidcli.models.registry import MODELS


class StagedBackbone(nn.Module):
    """A backbone as five stages (``stem`` and ``layers()``), which the re-ID head reads:
    subclasses set ``channels`` (the output channels of each stage)."""

    channels: tuple[int, ...]

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of (stem, layer1, layer2, layer3, layer4)."""
        outs = [self.stem(x)]
        for layer in self.layers():
            outs.append(layer(outs[-1]))
        return outs


class ResNetBackbone(StagedBackbone):
    """conv1..layer4 of a torchvision ResNet.

    Attributes:
        channels: output channels of (stem, layer1, layer2, layer3, layer4).
        arch: the registry name it was built as.
    """

    def __init__(self, net: tvr.ResNet, arch: str, last_stride: int = 2):
        super().__init__()
        self.arch = arch
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4
        )
        if last_stride == 1:
            _unstride(self.layer4[0])
        widths = [self.conv1.out_channels]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            widths.append(_block_out(layer[-1]))
        self.channels = tuple(widths)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def layers(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]


def _unstride(block: nn.Module) -> None:
    """Make the first block of layer4 stride 1 (conv2 in Bottleneck, conv1 in BasicBlock)."""
    for name in ("conv1", "conv2"):
        conv = getattr(block, name)
        if conv.stride != (1, 1):
            conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


def _block_out(block: nn.Module) -> int:
    last_bn = getattr(block, "bn3", None) or block.bn2
    return last_bn.num_features


def _tv_builder(
    arch: str, ctor: Callable[..., tvr.ResNet], weights: Optional[tvr.WeightsEnum]
) -> Callable[..., ResNetBackbone]:
    def build(last_stride: int = 2, pretrained: str = "none") -> ResNetBackbone:
        bb = ResNetBackbone(ctor(weights=None), arch, last_stride)
        load_backbone_weights(bb, arch, pretrained, url=weights.url if weights else None)
        return bb

    build.__name__ = arch
    build.__doc__ = f"torchvision {ctor.__name__} (ImageNet weights: {weights})."
    return build


for _arch, _ctor, _w in (
    ("resnet18", tvr.resnet18, tvr.ResNet18_Weights.IMAGENET1K_V1),
    ("resnet34", tvr.resnet34, tvr.ResNet34_Weights.IMAGENET1K_V1),
    ("resnet50", tvr.resnet50, tvr.ResNet50_Weights.IMAGENET1K_V1),
    ("resnet101", tvr.resnet101, tvr.ResNet101_Weights.IMAGENET1K_V1),
):
    MODELS.add(_arch, _tv_builder(_arch, _ctor, _w))
# 'tiny', the CPU preset of the tests, is an alias of resnet18 (see `reidcli.models.registry`).


def _narrow_resnet18(width: int, draw_skeleton: bool = True) -> tvr.ResNet:
    """A ResNet-18 layout whose stages have width, 2, 4, 8 x ``width`` channels.

    The layout starts from a full-width skeleton whose layers are all rebuilt. With
    ``draw_skeleton`` the skeleton is built and initialised on the CPU, drawing from the
    random generator (resnet18_half does, so that its seeded weights stay what they always
    were); without it the skeleton lives on the meta device: no memory, no draws, no time.
    """
    if draw_skeleton:
        net = tvr.ResNet(tvr.BasicBlock, [1, 1, 1, 1])  # rebuilt below, at the new width
    else:
        with torch.device("meta"):
            net = tvr.ResNet(tvr.BasicBlock, [1, 1, 1, 1])
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.layer1 = net._make_layer(tvr.BasicBlock, width, 2)
    net.layer2 = net._make_layer(tvr.BasicBlock, 2 * width, 2, stride=2)
    net.layer3 = net._make_layer(tvr.BasicBlock, 4 * width, 2, stride=2)
    net.layer4 = net._make_layer(tvr.BasicBlock, 8 * width, 2, stride=2)
    for m in net.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


@MODELS.register("resnet18_half")
def resnet18_half(last_stride: int = 2, pretrained: str = "none") -> ResNetBackbone:
    """ResNet-18 at half width (32-256 channels, 256-d features): about 4x faster than
    resnet18 on CPU, for quick tests; no ImageNet weights exist (PATH works)."""
    bb = ResNetBackbone(_narrow_resnet18(32), "resnet18_half", last_stride)
    load_backbone_weights(bb, "resnet18_half", pretrained, url=None)
    return bb


@MODELS.register("resnet18_quarter")
def resnet18_quarter(last_stride: int = 2, pretrained: str = "none") -> ResNetBackbone:
    """ResNet-18 at quarter width (16-128 channels, 128-d features, 16x fewer weights than
    resnet18): the smallest backbone, for tests where the network is not what is tested;
    no ImageNet weights exist (PATH works)."""
    bb = ResNetBackbone(_narrow_resnet18(16, draw_skeleton=False), "resnet18_quarter", last_stride)
    load_backbone_weights(bb, "resnet18_quarter", pretrained, url=None)
    return bb
