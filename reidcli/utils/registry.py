"""A small name -> factory registry with did-you-mean errors (timm-style).

Entries are registered by decorator when their module is imported. A registry may also
*declare* a built-in entry by the module that registers it (`Registry.declare`): its name
and one-line description are then known without importing that module (so ``--help`` can
list every model without importing torch), and the module is imported on first `get`.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, TypeVar

from reidcli.utils.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually factories).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny")
    ... def tiny(): ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._declared: dict[str, tuple[str, str]] = {}  # name -> (module, description)
        self._aliases: dict[str, str] = {}
        self._meta: dict[str, dict] = {}  # name -> facts known without importing the entry

    def register(self, name: str, **meta) -> Callable[[T], T]:
        """Decorator; ``meta``: facts about the entry `meta` returns (a plug-in's, when it
        is not declared)."""
        def deco(obj: T) -> T:
            if name in self._items or name in self._aliases:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            if meta:
                self._meta.setdefault(name, dict(meta))
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def declare(self, name: str, module: str, description: str = "", **meta) -> None:
        """Name a built-in entry that importing ``module`` registers (loaded on first `get`);
        ``meta``: facts about it that `meta` returns without that import."""
        self._declared[name] = (module, description)
        if meta:
            self._meta[name] = dict(meta)

    def meta(self, name: str) -> dict:
        """The facts given to `declare` / `register` for ``name`` (an alias: its target's);
        a name neither knows is the registry's did-you-mean `ConfigError`."""
        name = self._aliases.get(name, name)
        if name not in self._meta and name not in self:
            raise ConfigError(self.unknown_message(name))
        if name not in self._meta:
            self.get(name)  # a plug-in registers its facts on import
        return dict(self._meta.get(name, {}))

    def alias(self, name: str, target: str, description: str = "") -> None:
        """``name`` resolves to the entry ``target`` (an old or a shorter name)."""
        self._aliases[name] = target
        if description:
            self._declared.setdefault(name, ("", description))

    def get(self, name: str) -> T:
        name = self._aliases.get(name, name)
        if name not in self._items and name in self._declared:
            module = self._declared[name][0]
            importlib.import_module(module)
            if name not in self._items:
                raise RuntimeError(f"{module} was declared to register {self.kind} '{name}' but did not")
        if name not in self._items:
            raise ConfigError(self.unknown_message(name))
        return self._items[name]

    def unknown_message(self, name: str) -> str:
        names = self.names() + sorted(self._aliases)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown {self.kind} '{name}'{hint} (choices: {', '.join(names)})"

    def names(self) -> list[str]:
        """Every registered or declared name (aliases excluded), sorted."""
        return sorted(set(self._items) | (set(self._declared) - set(self._aliases)))

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def describe(self, name: str) -> str:
        """The one-line description given to `declare` / `alias` (else the first docstring line)."""
        if name in self._declared and self._declared[name][1]:
            return self._declared[name][1]
        doc = getattr(self._items.get(name), "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._declared or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
