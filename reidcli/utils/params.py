"""Declarative parameter checks, in the manner of scikit-learn's ``_param_validation``.

Each config (a dataclass, a function's keyword arguments) states its constraints as a small
table, and one checker validates them with one message shape::

    CONSTRAINTS = {
        "epochs": [Interval(int, 1, None)],
        "lr": [Interval(float, 0, None, closed="neither")],
        "optimizer": [Options({"adam", "sgd", "adamw"})],
        "margin": [None, Interval(float, 0, None)],      # None: the value may be None
    }
    check_params({"epochs": 0, ...}, CONSTRAINTS)
    # ParamError: epochs must be an int >= 1; got 0

Messages name the *Python* parameter; `ParamError.param` carries that name so that
``reid_command`` can show the user's ``--flag`` instead (``--epochs must be ...``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import Any, Callable, Iterable, Mapping, Optional

from reidcli.utils.errors import ConfigError


class ParamError(ConfigError):
    """A parameter value breaks its constraint. ``str(self)`` starts with ``param``."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param} {message}")
        self.param = param
        self.detail = message


class UsageError(ParamError):
    """Bad usage rather than a bad value: the CLI exits 2, as for an unknown flag."""

    exit_code = 2


class NotApplicable(UsageError):
    """A setting given where it would do nothing (`reject_unknown`, `reject_given`)."""


class Constraint:
    """One admissible set of values; `describe` completes "must be ..."."""

    def holds(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


class Interval(Constraint):
    """Numbers of ``kind`` (int or float) between ``left`` and ``right`` (None: unbounded).

    ``closed`` is 'both' (default), 'left', 'right' or 'neither'. A float interval accepts
    ints too; NaN and infinities are never in an interval (``--lr inf`` is refused, not
    trained on until the loss becomes NaN).
    """

    def __init__(self, kind: type, left: Optional[float], right: Optional[float], *, closed: str = "both"):
        if kind not in (int, float):
            raise TypeError("Interval kind must be int or float")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be both, left, right or neither; got {closed!r}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def holds(self, value: Any) -> bool:
        if not (_is_int(value) if self.kind is int else _is_real(value)):
            return False
        if not math.isfinite(value):
            return False
        lo_ok = self.left is None or (value >= self.left if self.closed in ("both", "left") else value > self.left)
        hi_ok = self.right is None or (value <= self.right if self.closed in ("both", "right") else value < self.right)
        return lo_ok and hi_ok

    def describe(self) -> str:
        name = "an int" if self.kind is int else "a float"
        lo_in, hi_in = self.closed in ("both", "left"), self.closed in ("both", "right")
        lo, hi = (self._show(v) for v in (self.left, self.right))
        if self.left is not None and self.right is not None:
            return f"{name} in {'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"
        if self.left is not None:
            return f"{name} {'>=' if lo_in else '>'} {lo}"
        if self.right is not None:
            return f"{name} {'<=' if hi_in else '<'} {hi}"
        return name

    def _show(self, bound: Optional[float]) -> str:
        """An int bound in full (2**32 - 1 is 4294967295, not 4.29497e+09), a float as ``:g``."""
        if bound is None:
            return ""
        return str(int(bound)) if self.kind is int and float(bound).is_integer() else f"{bound:g}"


class Options(Constraint):
    """One of a fixed set of values (strings usually)."""

    def __init__(self, values: Iterable[Any]):
        self.values = tuple(values)

    def holds(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(str(v) for v in self.values)


class InstanceOf(Constraint):
    """An instance of ``kind`` (bool is not an int here)."""

    def __init__(self, kind: type | tuple, name: Optional[str] = None):
        self.kind, self.name = kind, name

    def holds(self, value: Any) -> bool:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds:
            return False
        return isinstance(value, kinds)

    def describe(self) -> str:
        if self.name:
            return self.name
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return " or ".join(f"a {k.__name__}" for k in kinds)


class Satisfies(Constraint):
    """A value for which ``test(value)`` is true; ``description`` completes "must be ..."."""

    def __init__(self, test: Callable[[Any], bool], description: str):
        self.test, self.description = test, description

    def holds(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.description


class _NoneConstraint(Constraint):
    def holds(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"


BOOLEAN = InstanceOf(bool, "true or false")

# A random seed: what numpy's legacy seeding and scikit-learn's ``random_state`` accept (torch
# takes more), so one --seed works in every command; larger or negative seeds are refused.
SEED = [Interval(int, 0, 2**32 - 1)]
# The longest image side (pixels) a model input or a style model may have: beyond it one
# image alone needs gigabytes (a crafted checkpoint's 100000x100000 allocates 30 GB per image).
MAX_IMAGE_SIDE = 4096


def _as_constraint(c: Any) -> Constraint:
    if c is None:
        return _NoneConstraint()
    if isinstance(c, Constraint):
        return c
    if c == "boolean":
        return BOOLEAN
    if isinstance(c, type):
        return InstanceOf(c)
    raise TypeError(f"not a constraint: {c!r}")


def check_value(name: str, value: Any, constraints: list) -> None:
    """Raise `ParamError` unless ``value`` meets at least one of ``constraints``."""
    cs = [_as_constraint(c) for c in constraints]
    if any(c.holds(value) for c in cs):
        return
    shown = [c.describe() for c in cs if not isinstance(c, _NoneConstraint)]
    optional = len(shown) < len(cs)
    desc = " or ".join(shown) + (" (or None)" if optional else "")
    raise ParamError(name, f"must be {desc}; got {value!r}")


def check_params(values: Mapping[str, Any] | Any, constraints: Mapping[str, list]) -> None:
    """Validate every parameter of ``values`` (a mapping or a dataclass) named in
    ``constraints``; parameters absent from ``values`` are skipped."""
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        values = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    for name, cs in constraints.items():
        if name in values:
            check_value(name, values[name], cs)


def reject_unknown(given: Iterable[str], known: Iterable[str], *, what: str) -> None:
    """`ParamError` for the first name of ``given`` not in ``known`` (with a did-you-mean)."""
    known = sorted(known)
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            listed = ", ".join(known) if known else "none"
            raise NotApplicable(name, f"does not apply to {what}{hint} (its options: {listed})")


def reject_given(values: Mapping[str, Any], names: Iterable[str], *, applies: bool, what: str) -> None:
    """`reject_unknown` for options that apply only in some case: unless ``applies``, a
    `ParamError` for the first of ``names`` given in ``values`` (present and not None; a
    flag not given is None), ``"k1 does not apply <what>"``, e.g. ``what="without rerank
    (re-ranking's k1, k2, lambda_value)"``. A flag that would do nothing is refused, never
    silently ignored."""
    if applies:
        return
    for name in names:
        if values.get(name) is not None:
            raise NotApplicable(name, f"does not apply {what}")
