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


BATCH = ("p", "batch_size")  # one setting under two names: P identities, or P x K images


def over(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """Settings ``high`` over settings ``low`` (a later layer: the config file over the flag
    defaults, the command line over the config file). ``p`` and ``batch_size`` set one thing,
    the batch, so one of them given in ``high`` (not None) replaces both of ``low``'s: a
    ``--batch-size`` on the command line wins over a file's or a recipe's ``p``."""
    if any(high.get(name) is not None for name in BATCH):
        low = {k: v for k, v in low.items() if k not in BATCH}
    return {**low, **high}


def over_recipe(recipe: str | None, stage: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """`reidcli.recipes.with_recipe` with `over`'s batch rule: the recipe's ``p`` yields to a
    ``batch_size`` given (and a recipe's ``batch_size`` to a ``p``)."""
    from reidcli.recipes import with_recipe

    merged = with_recipe(recipe, stage, given)
    if any(given.get(name) is not None for name in BATCH):
        merged = {k: v for k, v in merged.items() if k not in BATCH or given.get(k) is not None}
    return merged


def recipe_schedule(recipe: str | None, stage: str, kind: type):
    """What a warm-up or milestones not given are scaled from when they do not fit the run
    (`reidcli.train.config.fit_schedule`): ``kind``'s defaults with the ``epochs``,
    ``warmup_epochs`` and ``milestones`` recipe ``recipe`` sets for ``stage``."""
    from reidcli.recipes import stage_settings
    from reidcli.train.config import schedule_reference

    return schedule_reference(kind, stage_settings(recipe, stage) if recipe else {})


def batch_size_to_p(settings: dict, kind: type) -> dict:
    """``batch_size`` (images per batch, torchreid's ``--batch-size`` / fast-reid's
    ``IMS_PER_BATCH``) as P of a P x K batch: P = batch_size / K, with K the ``k`` given
    or ``kind``'s default. Returns new settings without ``batch_size``. Both ``batch_size``
    and ``p`` can be here only when one layer (`over`) gave both: they must agree."""
    s = dict(settings)
    if s.get("batch_size") is None:
        s.pop("batch_size", None)
        return s
    total = s.pop("batch_size")
    k = s["k"] if s.get("k") is not None else default_of(kind, "k")
    if not isinstance(total, int) or isinstance(total, bool) or total < 2 * k or total % k:
        raise ParamError("batch_size", f"must be a multiple of k (images per identity, {k}) and at least "
                                       f"2 identities ({2 * k}); got {total!r}")
    if s.get("p") is not None and s["p"] != total // k:
        raise ParamError("batch_size", f"{total} contradicts p (identities per batch) {s['p']} x k {k} = "
                                       f"{s['p'] * k} images; give one of them")
    s["p"] = total // k
    return s


# --------------------------------------------------------------------------- config files
STAGES = ("pretrain", "finetune")


def config_key(key: str) -> str:
    """A config-file key as a setting name: ``--iters-per-epoch`` / ``iters-per-epoch`` ->
    ``iters_per_epoch``."""
    return key.lstrip("-").replace("-", "_")


def read_config(path, stage: str, aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of ``stage`` in the TOML file ``path``: its top-level keys, then the keys
    of its ``[stage]`` table over them (so one file may hold a ``[pretrain]`` and a
    ``[finetune]`` table; the tables of other stages are ignored). Keys are setting names or
    flag names, with or without the dashes (``iters-per-epoch``, ``iters_per_epoch``);
    ``aliases`` maps other names (a command's flag names, as `config_key` gives them) to
    setting names. A key given twice under two names is an error."""
    from pathlib import Path

    from reidcli.utils.errors import InputError

    path = Path(path)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise InputError("--config needs Python 3.11+ (tomllib) or the tomli package") from None
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"--config {path} is a folder; give a .toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--config {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"--config {path} is not valid TOML (not UTF-8 text)") from None
    top = {k: v for k, v in doc.items() if not isinstance(v, dict)}
    tables = {k for k, v in doc.items() if isinstance(v, dict)}
    unknown = sorted(tables - set(STAGES))
    if unknown:
        raise InputError(f"--config {path}: unknown table [{unknown[0]}]; tables name a stage "
                         f"({', '.join(f'[{s}]' for s in STAGES)}), settings are plain keys")
    out: dict[str, Any] = {}
    for part in (top, doc.get(stage, {})):
        seen: dict[str, str] = {}
        for key, value in part.items():
            name = config_key(key)
            name = (aliases or {}).get(name, name)
            if name in seen:
                raise InputError(f"--config {path}: '{key}' and '{seen[name]}' set the same setting; keep one")
            seen[name] = key
            out[name] = value
    return out


def _toml_value(value: Any) -> str:
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")) if not math.isfinite(value) \
            else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def toml_text(settings: Mapping[str, Any], stage: str, header: str = "") -> str:
    """Flat ``settings`` as a TOML document with one ``[stage]`` table (None values are left
    out: they mean "the default, decided at run time"); readable back by `read_config`."""
    lines = [f"# {line}" for line in header.splitlines()] + [f"[{stage}]"]
    for key in sorted(settings):
        value = settings[key]
        if value is None or isinstance(value, dict):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(path, settings: Mapping[str, Any], stage: str, header: str = ""):
    """Write `toml_text` atomically to ``path``."""
    from pathlib import Path

    from reidcli.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(toml_text(settings, stage, header), encoding="utf-8")
    return path


def config_path_for(out) -> "Optional[Path]":  # noqa: F821
    """The resolved config beside checkpoint ``out`` (``m.pt`` -> ``m.config.toml``); None
    when ``out`` is a device node or a FIFO (no side files, `reidcli.io.atomic.side_file`)."""
    from reidcli.io.atomic import side_file

    return side_file(out, ".config.toml")


def flat_settings(parts: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of `pretrain` / `finetune` (config objects and run keywords) back
    as flat settings, every field with its value: what a config file would have to say to
    repeat the run. Nested model settings (``rbnet``, ``mrda``) become ``rb_*`` / ``mrda_*``."""
    out: dict[str, Any] = {}
    for key, value in parts.items():
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping) and key in ("model", "train", "augment", "options"):
            for name, v in value.items():
                if name in ("rbnet", "mrda") and isinstance(v, Mapping):
                    prefix = "rb_" if name == "rbnet" else "mrda_"
                    out.update({prefix + k: w for k, w in v.items()})
                elif not isinstance(v, Mapping):
                    out[name] = v
        elif not isinstance(value, Mapping) and not hasattr(value, "splits"):
            out[key] = value if isinstance(value, (bool, int, float, str, list, tuple)) or value is None \
                else str(value)
    return out
