"""Pose backends: each turns RGB person crops into [B, 17, 3] COCO keypoints.

A backend module registers a factory with ``@BACKENDS.register("name")``; the factory takes
keyword options (``model``, ``input_size``, ``device``, ...) and returns a `PoseBackend`.
Modules are imported lazily by `get_backend`, so mediapipe or onnxruntime load only when
asked for. ``device`` (auto | cpu | cuda | cuda:N): onnx runs on onnxruntime's CUDA provider,
rbnet on torch's GPU; mediapipe and gt compute on the CPU only and refuse a ``cuda`` device.
"""

from __future__ import annotations

import importlib

from reidcli.pose.backends.base import BACKENDS, PoseBackend, letterbox
from reidcli.utils.errors import ConfigError
from reidcli.utils.params import NotApplicable

_MODULES = {"mediapipe": "mediapipe", "onnx": "onnx", "gt": "gt", "rbnet": "rbnet"}
DEFAULT_BACKEND = "mediapipe"
# The option naming the file a backend reads (mediapipe ships its own model): an ONNX model
# or a ground-truth pose file is a `model`, an RBNet checkpoint a `ckpt`.
FILE_OPTION = {"mediapipe": None, "onnx": "model", "gt": "model", "rbnet": "ckpt"}
_FILE_USERS = {"model": "onnx (the model file) and gt (the pose file)", "ckpt": "rbnet (its checkpoint)"}
# Backends that cannot use a GPU, and why (`check_device` refuses --device cuda for them).
CPU_ONLY = {"mediapipe": "runs on the CPU only (mediapipe's Python pose solution has no GPU graph)",
            "gt": "computes nothing (it reads the keypoints from a pose file)"}


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
    check_options(name, options)
    check_device(name, options.get("device", "auto"))
    return BACKENDS.get(name)(**{k: v for k, v in options.items() if k not in TUNING or v is not None})


def check_device(name: str, device: str) -> None:
    """``device`` is a ``--device`` value (`reidcli.utils.device.check_device`) that backend
    ``name`` can use: a ``cuda`` device for a CPU-only backend is a `ConfigError` saying why,
    rather than a GPU request silently run on the CPU (``auto`` means the CPU there)."""
    from reidcli.utils.device import is_cuda

    if is_cuda(device) and name in CPU_ONLY:
        raise ConfigError(f"--device {device}: --backend {name} {CPU_ONLY[name]}; use --device cpu (or auto), "
                          "or a GPU backend: --backend onnx --model FILE.onnx or rbnet --ckpt M.pt")


# The tuning options each backend reads (None: not given, the backend's default); one given
# to a backend that does not read it is refused by `check_options`, never ignored.
TUNING = ("input_size", "mean", "std", "box_padding", "refine", "min_confidence")
BACKEND_OPTIONS = {"mediapipe": ("min_confidence",), "onnx": ("input_size", "mean", "std", "box_padding", "refine"),
                   "gt": (), "rbnet": ("refine",)}


def check_options(name: str, options: dict) -> None:
    """`check_file_option`, then a `ParamError` for a tuning option (`TUNING`, not None) that
    backend ``name`` does not read (``--refine`` with ``--backend gt``)."""
    check_file_option(name, options)
    takes = BACKEND_OPTIONS.get(name, TUNING)
    users = lambda opt: ", ".join(b for b, opts in BACKEND_OPTIONS.items() if opt in opts)  # noqa: E731
    for opt in TUNING:
        if opt not in takes and options.get(opt) is not None:
            raise NotApplicable(opt, f"does not apply to --backend {name}"
                                  f"{' (it reads the keypoints from a pose file)' if name == 'gt' else ''}; "
                                  f"it is an option of --backend {users(opt)}")


def check_file_option(name: str, options: dict) -> None:
    """`ParamError` when ``options`` gives a file under the option backend ``name`` does not
    read (``ckpt`` to onnx, ``model`` to rbnet or mediapipe), instead of ignoring it."""
    takes = FILE_OPTION.get(name)
    for opt, users in _FILE_USERS.items():
        if options.get(opt) is not None and opt != takes:
            reads = f"which reads --{takes}" if takes else "which ships its own model"
            raise NotApplicable(opt, f"does not apply to --backend {name}, {reads}; "
                                  f"--{opt} is for --backend {users}")


__all__ = ["BACKENDS", "PoseBackend", "get_backend", "backend_names", "check_file_option", "check_options",
           "check_device", "TUNING", "BACKEND_OPTIONS",
           "letterbox", "DEFAULT_BACKEND", "FILE_OPTION", "CPU_ONLY"]
