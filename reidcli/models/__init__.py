"""reidcli.models: backbones (one `MODELS` registry), the re-ID head, one builder, and the
one way back from a checkpoint to a network (`network_from_checkpoint`, `load_network`).

Importing this package does not import torch: the configuration and the registry are plain
Python, and the torch-backed names load on first access.

>>> from reidcli.models import ModelConfig, build_model
>>> net = build_model(ModelConfig(arch="tiny", num_classes=10))
>>> net.feat_dim
512
"""

from __future__ import annotations

import importlib
from typing import Any

from reidcli.models.config import ModelConfig, check_input_size, min_input_divisor
from reidcli.models.registry import MODELS, arch_help

_LAZY = {
    "ReidNet": "reidcli.models.net",
    "build_model": "reidcli.models.net",
    "network_from_checkpoint": "reidcli.models.checkpoint",
    "load_network": "reidcli.models.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reidcli.models' has no attribute {name!r}")


__all__ = [
    "MODELS",
    "ModelConfig",
    "ReidNet",
    "arch_help",
    "build_model",
    "check_input_size",
    "load_network",
    "min_input_divisor",
    "network_from_checkpoint",
]
