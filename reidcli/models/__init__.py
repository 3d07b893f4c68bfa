"""reidcli.models: backbones (one `MODELS` registry), the re-ID head, one builder.

>>> from reidcli.models import ModelConfig, build_model
>>> net = build_model(ModelConfig(arch="tiny", num_classes=10))
>>> net.feat_dim
512
"""

from reidcli.models.config import ModelConfig, check_input_size, min_input_divisor
from reidcli.models.registry import MODELS
from reidcli.models import backbones as _backbones  # noqa: F401  (registers resnets)
from reidcli.models import se_ibn as _se_ibn  # noqa: F401  (se_resnet50, resnet50_ibn_a)
from reidcli.models.net import ReidNet, build_model
from reidcli.models import rbnet as _rbnet  # noqa: F401,E402  (registers 'rbnet')

__all__ = [
    "MODELS",
    "ModelConfig",
    "ReidNet",
    "build_model",
    "check_input_size",
    "min_input_divisor",
]
