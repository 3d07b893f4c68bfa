"""`LOSSES`: loss name -> nn.Module class. Import it from `reidcli.losses`."""

from __future__ import annotations

from reidcli.utils.registry import Registry

LOSSES: Registry = Registry("loss")
