"""Options whose default lives in a library dataclass: the flag defaults to None (so only
the flags a user gives reach the library) and its help text shows the dataclass default."""

from __future__ import annotations

import typer

from reidcli.train.settings import default_of, help_default


def opt(*names: str, help: str, of: type | None = None, field: str = "", **kw):
    """``typer.Option(*names)`` whose help ends with ``[default: ...]`` of ``of.field``
    (``field`` defaults to the first flag's name, ``--weight-decay`` -> ``weight_decay``)."""
    if of is not None:
        help = f"{help} {help_default(of, field or names[0].split('/')[0].lstrip('-').replace('-', '_'))}"
    return typer.Option(*names, help=help, **kw)


def per_method(field: str, **kinds: type) -> str:
    """``[default: ...]`` of an option several methods share, per method when they differ."""
    values = {name: default_of(kind, field) for name, kind in kinds.items()}
    if len(set(values.values())) == 1:
        return f"\\[default: {next(iter(values.values()))}]"
    return "\\[default: " + ", ".join(f"{n} {v:g}" for n, v in values.items()) + "]"
