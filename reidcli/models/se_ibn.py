"""ResNet-50 variants: SE-ResNet-50 and ResNet-50-IBN-a, as torchvision ResNets with
modified bottlenecks (parameter names follow torchvision / the IBN-Net release)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet as tvr

from reidcli.models.backbones import ResNetBackbone
from reidcli.models.pretrained import load_backbone_weights
from reidcli.models.registry import MODELS

R50_URL = tvr.ResNet50_Weights.IMAGENET1K_V1.url
IBN_A_URL = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/resnet50_ibn_a-d9d0bb7b.pth"


class SEModule(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018, eqs. 2-4): z = GAP(u),
    s = sigmoid(W2 relu(W1 z)) with reduction r = 16, output s_c * u_c."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class SEBottleneck(tvr.Bottleneck):
    """torchvision's Bottleneck with SE on the residual branch before the addition
    (Hu et al., fig. 3, SE-ResNet module)."""

    def __init__(self, inplanes: int, planes: int, *args, **kwargs):
        super().__init__(inplanes, planes, *args, **kwargs)
        self.se = SEModule(planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


class IBN(nn.Module):
    """Instance-batch normalisation, IBN-a (Pan et al., ECCV 2018, sec. 3.2): instance norm
    (affine) on the first half of the channels, batch norm on the rest."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        self.half = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    @property
    def num_features(self) -> int:
        return self.half + self.BN.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.size(1) - self.half], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


class IBNBottleneck(tvr.Bottleneck):
    """Bottleneck whose first BN is IBN-a in layer1-3 (not layer4, planes 512)."""

    def __init__(self, inplanes: int, planes: int, *args, **kwargs):
        super().__init__(inplanes, planes, *args, **kwargs)
        if planes != 512:
            self.bn1 = IBN(self.bn1.num_features)


@MODELS.register("se_resnet50")
def se_resnet50(last_stride: int = 2, pretrained: str = "none") -> ResNetBackbone:
    """SE-ResNet-50 (Hu et al. 2018), SE in every bottleneck (as Zhang et al. 2020 use it).

    torchvision ships no SE weights: 'imagenet' loads torchvision's ResNet-50 into the
    shared layers and leaves the SE blocks at their initial values (reported); pass a
    PATH to an SE-ResNet-50 state dict for fully pretrained weights.
    """
    net = tvr.ResNet(SEBottleneck, [3, 4, 6, 3])
    bb = ResNetBackbone(net, "se_resnet50", last_stride)
    load_backbone_weights(bb, "se_resnet50", pretrained, url=R50_URL)
    return bb


@MODELS.register("resnet50_ibn_a")
def resnet50_ibn_a(last_stride: int = 2, pretrained: str = "none") -> ResNetBackbone:
    """ResNet-50-IBN-a (Pan et al. 2018); 'imagenet' uses the IBN-Net release weights."""
    net = tvr.ResNet(IBNBottleneck, [3, 4, 6, 3])
    bb = ResNetBackbone(net, "resnet50_ibn_a", last_stride)
    load_backbone_weights(bb, "resnet50_ibn_a", pretrained, url=IBN_A_URL)
    return bb
