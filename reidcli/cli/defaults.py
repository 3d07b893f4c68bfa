"""Options whose default lives in a library dataclass: the flag defaults to None (so only
the flags a user gives reach the library) and its help text shows the dataclass default."""

from __future__ import annotations

import typer

from reidcli.train.settings import default_of, help_default


def opt(*names: str, help: str, of: type | dict[str, type] | None = None, field: str = "",
        shows: object = None, **kw):
    """``typer.Option(*names)`` whose help ends with ``[default: ...]`` of ``of.field``
    (``field`` defaults to the first flag's name, ``--weight-decay`` -> ``weight_decay``).
    ``of`` may map method names to their options dataclasses (an option several methods
    share: `per_method`). ``shows``: a library constant that is no dataclass field (a default
    method name), shown as ``[default: shows]``. The one way a CLI flag shows a library
    default: the option keeps ``default_of = (of, field)`` (``(None, shows)``) for
    tests/test_cli_defaults.py."""
    field = field or names[0].split("/")[0].lstrip("-").replace("-", "_")
    if isinstance(of, dict):
        help = f"{help} {per_method(field, **of)}"
    elif of is not None:
        help = f"{help} {help_default(of, field)}"
    elif shows is not None:
        help = f"{help} \\[default: {shows}]"
    info = typer.Option(*names, help=help, **kw)
    info.default_of = (of, field) if of is not None else (None, shows) if shows is not None else None
    return info


def per_method(field: str, **kinds: type) -> str:
    """``[default: ...]`` of an option several methods share, per method when they differ."""
    values = {name: default_of(kind, field) for name, kind in kinds.items()}
    if len(set(values.values())) == 1:
        return f"\\[default: {next(iter(values.values()))}]"
    return "\\[default: " + ", ".join(f"{n} {v:g}" if isinstance(v, float) else f"{n} {v}"
                                      for n, v in values.items()) + "]"
