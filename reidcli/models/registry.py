"""`MODELS`: backbone name -> builder ``fn(last_stride=2, pretrained="none") -> nn.Module``.

Builders register themselves on import of `reidcli.models`; import the registry from there.
"""

from __future__ import annotations

from reidcli.utils.registry import Registry

MODELS: Registry = Registry("model")
