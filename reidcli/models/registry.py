"""`MODELS`: backbone name -> builder ``fn(last_stride=2, pretrained="none") -> nn.Module``.

Builders register themselves with ``@MODELS.register("name")`` in their family module. The
built-in ones are *declared* here with the module that registers them and a one-line
description, so their names are known without importing torch (``reid pretrain --help``
lists them) and a module loads on first use. A new built-in model: a builder in a family
file, registered there, plus one `declare` line below (`tests/test_models.py` then builds,
trains one step and round-trips it automatically).
"""

from __future__ import annotations

from reidcli.utils.registry import Registry

MODELS: Registry = Registry("model")

_B, _SE = "reidcli.models.backbones", "reidcli.models.se_ibn"
MODELS.declare("resnet18", _B, "torchvision ResNet-18")
MODELS.declare("resnet34", _B, "ResNet-34")
MODELS.declare("resnet50", _B, "ResNet-50, the papers' backbone")
MODELS.declare("resnet101", _B, "ResNet-101")
MODELS.declare("resnet18_half", _B, "ResNet-18 at half width: 32-256 channels, 256-d features, "
                                    "about 4x faster on CPU, no ImageNet weights")
MODELS.declare("resnet18_quarter", _B, "ResNet-18 at quarter width: 16-128 channels, 128-d features, "
                                       "the smallest, for tests; no ImageNet weights")
MODELS.declare("mobilenet_v2", "reidcli.models.mobilenet", "torchvision MobileNetV2: 1280-d features, "
                                                     "ImageNet weights offline: python -m reidcli.models.offline_weights")
MODELS.declare("se_resnet50", _SE, "SE-ResNet-50")
MODELS.declare("resnet50_ibn_a", _SE, "ResNet-50-IBN-a")
MODELS.declare("rbnet", "reidcli.models.rbnet", "RBNet: a keypoint-guided reverse backbone over --rb-backbone")
MODELS.declare("mrda", "reidcli.models.mrda", "MRDA: two-stream (visible/infrared) ResNet of "
                                            "--mrda-backbone with dynamic attention")
MODELS.alias("tiny", "resnet18", "= resnet18, a full ResNet-18; the CPU test preset")


def arch_help() -> str:
    """``--arch``'s help text: every registered name with its description, then the aliases."""
    names = [f"{n} ({MODELS.describe(n)})" if MODELS.describe(n) else n for n in MODELS.names()]
    aliases = [f"{a} ({MODELS.describe(a)})" for a in sorted(MODELS.aliases())]
    return "Backbone: " + ", ".join(names + aliases) + "."
