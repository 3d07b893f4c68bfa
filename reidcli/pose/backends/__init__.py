"""Pose backends: each turns RGB person crops into [B, 17, 3] COCO keypoints.

A backend module registers a factory with ``@BACKENDS.register("name")``; the factory takes
keyword options (``model``, ``input_size``, ...) and returns a `PoseBackend`. Modules are
imported lazily by `get_backend`, so mediapipe or onnxruntime load only when asked for.
"""

from __future__ import annotations

import importlib

from reidcli.pose.backends.base import BACKENDS, PoseBackend, letterbox

_MODULES = {"mediapipe": "mediapipe", "onnx": "onnx", "gt": "gt", "rbnet": "rbnet"}
DEFAULT_BACKEND = "mediapipe"


def backend_names() -> list[str]:
    return sorted(_MODULES)


def get_backend(name: str, **options) -> PoseBackend:
    """Build a backend by name (did-you-mean on a typo); options go to its factory."""
    if name in _MODULES and name not in BACKENDS:
        importlib.import_module(f"reidcli.pose.backends.{_MODULES[name]}")
    if name not in BACKENDS:
        from reidcli.utils.registry import Registry

        names = Registry("pose backend")
        for n in backend_names():
            names.add(n, None)
        names.get(name)  # raises ConfigError with the closest match
    return BACKENDS.get(name)(**options)


__all__ = ["BACKENDS", "PoseBackend", "get_backend", "backend_names", "letterbox", "DEFAULT_BACKEND"]
