"""`MrdaNetOptions`: the ``mrda`` dict of a `ModelConfig` (arch ``mrda``), torch-free so
``reid pretrain --help`` can show its defaults (the network is `reidcli.models.mrda`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from reidcli.models.registry import MODELS
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import Interval, Satisfies, check_params


@dataclass
class MrdaNetOptions:
    """The ``mrda`` dict of a `ModelConfig` (``reid pretrain --mrda-backbone/--attn-topk/
    --two-stream/--dyn-attention``). ``two_stream`` and ``attention`` off are the ablations of
    the paper's Table 2 (Zhang et al. 2023): one stem for both modalities; F = GeM(f) without
    the attended term."""

    backbone: str = "resnet50"
    attn_topk: int = 8
    qk_reduction: int = 8  # Q and K have C / qk_reduction channels (our choice; V keeps C)
    two_stream: bool = True
    attention: bool = True

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "backbone": [Satisfies(lambda v: isinstance(v, str) and v not in ("mrda", "rbnet", "mobilenet_v2"), "a ResNet name")],
        "attn_topk": [Interval(int, 1, None)], "qk_reduction": [Interval(int, 1, None)],
        "two_stream": ["boolean"], "attention": ["boolean"],
    }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> MrdaNetOptions:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(f"unknown MRDA model option(s) {extra}; known: {sorted(known)}")
        o = cls(**d)
        check_params(o, cls.CONSTRAINTS)
        MODELS.get(o.backbone)
        return o
