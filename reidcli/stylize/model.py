"""The stylize checkpoint: a reidcli checkpoint of kind ``"stylize"`` (`reidcli.io.ckpt`).

``model_config`` holds ``{"kind": "stylize", "method": "color" | "stargan", "cameras":
[0-based camera ids], ...}``; ``input_size`` is the image size the model works at
(``color`` works at any size); ``model`` holds the method's tensors (``color``: per camera
``cam<i>.sample`` / ``.mean`` / ``.cov`` / ``.quantiles``; ``stargan``: the generator).
`reid features` and the training commands refuse it (they load kind ``"reid"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidcli.io.ckpt import load_checkpoint, make_checkpoint, save_checkpoint
from reidcli.stylize.color import CameraStats
from reidcli.utils.errors import FormatError

KIND = "stylize"
_FIELDS = ("sample", "mean", "cov", "quantiles")


@dataclass
class StyleModel:
    """A fitted camera-style model: its method, the cameras it knows and their styles."""

    method: str
    cameras: list[int]
    input_size: tuple[int, int]
    stats: dict[int, CameraStats] = field(default_factory=dict)  # color
    state: dict[str, Any] = field(default_factory=dict)  # stargan: generator state, config
    config: dict[str, Any] = field(default_factory=dict)
    provenance: list = field(default_factory=list)


def color_checkpoint(model: StyleModel) -> dict:
    import torch

    state = {f"cam{c}.{k}": torch.from_numpy(np.asarray(getattr(s, k), dtype=np.float64 if k != "sample"
                                                         else np.float32).copy())
             for c, s in model.stats.items() for k in _FIELDS}
    return make_checkpoint(model_config={"kind": KIND, "method": model.method, "cameras": model.cameras,
                                         "color_space": "lab", **model.config},
                           model_state=state, input_size=model.input_size, method=model.method,
                           epoch=0, provenance=model.provenance, extra={"kind": KIND})


def save_style_model(path: str | os.PathLike, model: StyleModel) -> Path:
    return save_checkpoint(path, color_checkpoint(model))


def load_style_model(path: str | os.PathLike) -> StyleModel:
    """Read a ``reid stylize fit`` checkpoint (refuses a re-ID checkpoint with one line)."""
    ck = load_checkpoint(path, kind=KIND)
    cfg = dict(ck["model_config"])
    method = cfg.get("method")
    cams = [int(c) for c in cfg.get("cameras", [])]
    size = (int(ck["input_size"][0]), int(ck["input_size"][1]))
    if method == "color":
        try:
            stats = {c: CameraStats(**{k: ck["model"][f"cam{c}.{k}"].numpy() for k in _FIELDS}) for c in cams}
        except KeyError as exc:
            raise FormatError(f"{path}: stylize checkpoint without {exc.args[0]}; re-create it with "
                              "'reid stylize fit'") from None
        return StyleModel(method, cams, size, stats=stats, config=cfg, provenance=ck.get("provenance", []))
    if method == "stargan":
        return StyleModel(method, cams, size, state=ck["model"], config=cfg, provenance=ck.get("provenance", []))
    raise FormatError(f"{path}: unknown stylize method {method!r}; re-create it with 'reid stylize fit'")
