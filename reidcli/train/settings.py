"""Flat keyword settings (a command's flags) -> the config objects of a training stage.

``reid pretrain`` and ``reid finetune`` take one flag per config field; `split_settings`
sends each setting to the dataclass that has a field of that name, so the CLI only
collects the flags it was given and the library builds the configs. A name no dataclass
has is a `ParamError` naming it (never silently dropped). `help_default` gives the CLI the
default of a field for its help text, so defaults live in the dataclasses alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from reidcli.utils.params import ParamError, reject_unknown


def field_names(kind: type) -> list[str]:
    """The field names of dataclass ``kind``."""
    return [f.name for f in dataclasses.fields(kind)]


def split_settings(settings: Mapping[str, Any], kinds: Mapping[str, type], *, rest: tuple[str, ...] = (),
                   others: str | None = None, what: str = "") -> dict[str, dict[str, Any]]:
    """``{part: {field: value}}`` for each ``kinds[part]`` dataclass, ``"rest"`` for the names
    listed in ``rest`` (keywords of the entry function) and, when ``others`` names a part,
    every remaining setting there (for a checker that knows better, e.g. a method's options).

    Raises:
        ParamError: without ``others``, a setting that is no field of ``kinds`` nor in ``rest``.
    """
    owners = {name: part for part, kind in reversed(list(kinds.items())) for name in field_names(kind)}
    owners.update(dict.fromkeys(rest, "rest"))
    if others is None:
        reject_unknown([k for k in settings if k not in owners], owners, what=what)
    out: dict[str, dict[str, Any]] = {part: {} for part in [*kinds, "rest", *([others] if others else [])]}
    for key, value in settings.items():
        out[owners.get(key, others)][key] = value
    return out


def default_of(kind: type, name: str) -> Any:
    """The default value of field ``name`` of dataclass ``kind``."""
    f = next(f for f in dataclasses.fields(kind) if f.name == name)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def help_default(kind: type, name: str) -> str:
    """``[default: V]`` for field ``name`` of dataclass ``kind``, for a ``--help`` text whose
    flag defaults to None (only given flags reach the library); escaped for rich markup."""
    value = default_of(kind, name)
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value) or "none"
    return f"\\[default: {value}]"


def parse_ints(text: str | list, name: str) -> list[int]:
    """``"40,70"`` -> ``[40, 70]`` (a list passes through)."""
    if not isinstance(text, str):
        return list(text)
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParamError(name, f"must be comma-separated epochs like 40,70; got {text!r}") from None
