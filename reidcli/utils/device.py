"""Device selection: CUDA when present, CPU otherwise, or what the user asks."""

from __future__ import annotations

from reidcli.utils.errors import ConfigError

DEVICES = "auto | cpu | cuda | cuda:N"


def check_device(name: str) -> str:
    """``name`` when it is a ``--device`` value (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``),
    checked without importing torch; else a `ParamError` naming ``device``."""
    from reidcli.utils.params import ParamError

    if isinstance(name, str) and (name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())):
        return name
    raise ParamError("device", f"must be {DEVICES}; got {name!r}")


def is_cuda(name: str) -> bool:
    """True for a (checked) ``--device`` value that asks for a GPU: ``cuda`` or ``cuda:N``."""
    return check_device(name).startswith("cuda")


def cuda_index(name: str) -> int:
    """The GPU index of ``cuda:N`` (0 for ``cuda``)."""
    return int(name[5:]) if check_device(name).startswith("cuda:") else 0


def resolve_device(name: str = "auto"):
    """Return a ``torch.device`` for ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for CUDA but none is available; pass --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N; got '{name}'") from exc


def device_name(name: str = "auto") -> str:
    """`resolve_device` as a string; ``cpu`` without importing torch (light commands such as
    ``reid evaluate`` stay torch-free on the CPU)."""
    return "cpu" if name == "cpu" else str(resolve_device(name))
