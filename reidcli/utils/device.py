"""Device selection: CUDA when present, CPU otherwise, or what the user asks."""

from __future__ import annotations

from reidcli.utils.errors import ConfigError


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
