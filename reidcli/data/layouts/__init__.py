"""Dataset layouts: auto-detect a dataset folder's layout and parse it into a `Dataset`.

>>> ds = load_dataset("data/Market-1501-v15.09.15")          # doctest: +SKIP
>>> ds.summary()                                              # doctest: +SKIP
'market1501 at data/...: train: 751 ids, 12936 images, 6 cameras; query: ...'

Formats (``DATASETS.names()``): market1501, dukemtmc, msmt17, cuhk03, sysu, regdb, folder
(``<pid>/<image>``), unlabelled (any images) and csv. Aliases such as ``market``,
``duke``, ``market-1501`` or ``cuhk03-labeled`` are accepted. The root may be the dataset
folder itself or a folder holding it (``data/`` with ``data/Market-1501-v15.09.15/``).
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from reidcli.data.layouts._common import Layout, subdirs
from reidcli.data.layouts.csvlist import CSV
from reidcli.data.layouts.folder import FOLDER, UNLABELLED
from reidcli.data.layouts.market import CUHK03, DUKE, MARKET
from reidcli.data.layouts.msmt17 import MSMT17
from reidcli.data.layouts.regdb import REGDB
from reidcli.data.layouts.sysu import SYSU
from reidcli.data.records import Dataset
from reidcli.utils.errors import ConfigError, InputError
from reidcli.utils.registry import Registry

__all__ = ["DATASETS", "OPTIONS", "load_dataset", "load_datasets", "detect_format", "resolve_format"]

log = logging.getLogger(__name__)

DATASETS: Registry[Layout] = Registry("dataset format")
# Detection order: list-file layouts first, then folder-name layouts, generic ones last.
SPECIFIC = (MSMT17, SYSU, REGDB, CUHK03, MARKET, DUKE)
for _layout in (*SPECIFIC, FOLDER, UNLABELLED, CSV):
    DATASETS.add(_layout.name, _layout)

OPTIONS = ("cam_regex", "cuhk03_variant", "regdb_trial", "csv")

_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    **{k: ("market1501", {}) for k in ("market", "market1501", "market1501v150915")},
    **{k: ("dukemtmc", {}) for k in ("duke", "dukemtmc", "dukemtmcreid", "dukereid")},
    **{k: ("msmt17", {}) for k in ("msmt", "msmt17", "msmt17v1", "msmt17v2")},
    **{k: ("cuhk03", {}) for k in ("cuhk03", "cuhk03np", "cuhk")},
    "cuhk03detected": ("cuhk03", {"cuhk03_variant": "detected"}),
    "cuhk03npdetected": ("cuhk03", {"cuhk03_variant": "detected"}),
    **{k: ("cuhk03", {"cuhk03_variant": "labeled"})
       for k in ("cuhk03labeled", "cuhk03labelled", "cuhk03nplabeled", "cuhk03nplabelled")},
    **{k: ("sysu", {}) for k in ("sysu", "sysumm01", "sysumm")},
    "regdb": ("regdb", {}),
    **{f"regdbtrial{t}": ("regdb", {"regdb_trial": t}) for t in range(1, 11)},  # --format regdb-trial3
    **{k: ("folder", {}) for k in ("folder", "labelled", "labeled", "pidfolder", "imagefolder")},
    **{k: ("unlabelled", {}) for k in ("unlabelled", "unlabeled", "images", "flat")},
    **{k: ("csv", {}) for k in ("csv", "list", "csvlist")},
}


def _key(name: str) -> str:
    return re.sub(r"[\s._\-]+", "", name.lower())


def resolve_format(name: str) -> tuple[str, dict[str, Any]]:
    """Canonical format name and the options an alias implies (``cuhk03-labeled``)."""
    hit = _ALIASES.get(_key(name))
    if hit is None:
        close = difflib.get_close_matches(_key(name), list(_ALIASES), n=1, cutoff=0.6)
        hint = f"; did you mean '{_ALIASES[close[0]][0]}'?" if close else ""
        raise ConfigError(f"unknown dataset format '{name}'{hint} (choices: {', '.join(DATASETS.names())})")
    return hit[0], dict(hit[1])


def _check_root(root: Path) -> None:
    if not root.exists():
        from reidcli.io.atomic import missing_message

        raise InputError(missing_message(root, noun="folder or file"))
    if not root.is_dir() and not root.is_file():  # /dev/null, a FIFO, a socket
        raise InputError(f"{root} is a device, FIFO or socket, not a dataset: give a dataset folder or a .csv list")
    if root.is_dir() and not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise InputError(f"{root}: empty folder; expected a dataset such as Market-1501 or a folder of images")


def _specific_at(folder: Path) -> Optional[Layout]:
    return next((lay for lay in SPECIFIC if lay.matches(folder)), None)


def _locate_specific(root: Path) -> list[tuple[Layout, Path]]:
    """Specific layouts at the root, else in its immediate sub-folders."""
    if root.is_file():
        return []
    own = _specific_at(root)
    if own is not None:
        return [(own, root)]
    found = []
    for d in subdirs(root):
        lay = _specific_at(root / d)
        if lay is not None:
            found.append((lay, root / d))
    return found


def _ambiguous(root: Path, hits: list[tuple[Layout, Path]]) -> InputError:
    listed = ", ".join(f"{lay.name} ({p})" for lay, p in hits)
    names = sorted({lay.name for lay, _ in hits})
    how = (f"pass one of these folders, or --format {names[0]}" + "".join(f" / {n}" for n in names[1:])
           if len(names) == len(hits) else "pass one of these folders")
    return InputError(f"{root} holds several datasets: {listed}; {how}")


def _detect(root: Path) -> tuple[Layout, Path]:
    _check_root(root)
    if CSV.matches(root):
        return CSV, root
    if root.is_file():
        raise InputError(f"{root}: a file, not a dataset folder or a .csv list")
    hits = _locate_specific(root)
    if len(hits) > 1:
        raise _ambiguous(root, hits)
    if hits:
        return hits[0]
    for lay in (FOLDER, UNLABELLED):
        if lay.matches(root):
            return lay, root
    raise InputError(f"{root}: no dataset layout recognised and no images found; expected e.g. a "
                     f"Market-1501 tree ({MARKET.expects}) or a folder of images")


def detect_format(root: str | Path) -> str:
    """The name of the layout of ``root`` (a dataset folder, a folder holding one, or a .csv)."""
    return _detect(Path(root))[0].name


def _looks_like(root: Path) -> str:
    try:
        lay = _detect(root)[0]
    except InputError:
        return "no known layout was recognised"
    return f"it looks like {lay.name}; pass --format {lay.name} or omit --format"


def _mismatch(root: Path, lay: Layout) -> InputError:
    return InputError(f"{root} is not a {lay.name} tree (expected {lay.expects}); {_looks_like(root)}")


def _resolve(root: Path, fmt: Optional[str]) -> tuple[Layout, Path]:
    if fmt is None:
        return _detect(root)
    _check_root(root)
    lay = DATASETS.get(fmt)
    if lay is CSV or lay is UNLABELLED:
        return lay, root
    if lay is FOLDER:
        if root.is_dir() and not FOLDER.matches(root) and _specific_at(root) is not None:
            raise _mismatch(root, lay)
        return lay, root
    hits = [(h, p) for h, p in _locate_specific(root) if h is lay]
    if not hits and root.is_dir():  # a tree of this layout can look like another one first
        hits = [(lay, p) for p in [root, *(root / d for d in subdirs(root))] if lay.matches(p)][:1]
    if len(hits) > 1:
        raise _ambiguous(root, hits)
    if not hits:
        raise _mismatch(root, lay)
    return hits[0]


def _takers(option: str) -> list[str]:
    """The layouts that take ``option``."""
    return [n for n in DATASETS.names() if option in DATASETS.get(n).options]


def _ignored(option: str, layouts: Sequence[str]) -> str:
    names, takers = " / ".join(dict.fromkeys(layouts)), _takers(option)
    return (f"option {option} does not apply to the {names} layout{'s' if ' / ' in names else ''} "
            f"(only {' and '.join(takers)} take{'s' if len(takers) == 1 else ''} it); ignored")


def load_dataset(root: str | Path, format: Optional[str] = None, *, quiet_unused: bool = False,
                 announce: bool = True, **options: Any) -> Dataset:
    """Parse the dataset at ``root`` (layout auto-detected when ``format`` is None).

    Args:
        root: a dataset folder, a folder that holds one, or a ``.csv`` list.
        format: a name or alias of ``DATASETS``; None detects it.
        quiet_unused: log an option the layout does not take at debug level instead of as a
            warning (a caller that gives the same option to several datasets:
            `load_datasets` warns once when none of them took it).
        announce: log the dataset's summary and notes at info level; False logs them at
            debug level (a caller that shows them itself: `reid info`).
        **options: ``cam_regex`` (folder / unlabelled: the camera id is group 1, or the
            group named ``cam``, of this regex searched in each image's relative path,
            ``r"c(\\d+)"``; ``reid ... --cam-regex``), ``cuhk03_variant`` ('detected' |
            'labeled'), ``regdb_trial`` (1..10), ``csv`` (the list file of the csv layout).
            None values are ignored.

    Raises:
        InputError: a missing, empty or malformed tree (the message names the path).
        ConfigError: an unknown format or option, or an invalid option value.
    """
    root = Path(root).expanduser()
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown dataset option '{unknown[0]}' (choices: {', '.join(OPTIONS)})")
    opts = {k: v for k, v in options.items() if v is not None}
    fmt, implied = resolve_format(format) if format else (None, {})
    if fmt is None and "csv" in opts:
        fmt = "csv"
    opts = {**implied, **opts}
    lay, folder = _resolve(root, fmt)
    for k in sorted(set(opts) - set(lay.options)):
        log.log(logging.DEBUG if quiet_unused else logging.WARNING, "%s", _ignored(k, [lay.name]))
    ds = lay.load(folder, **{k: v for k, v in opts.items() if k in lay.options})
    level = logging.INFO if announce else logging.DEBUG
    log.log(level, "%s", ds.summary())
    if ds.meta.get("notes"):
        log.log(level, "%s: %s", ds.format, "; ".join(ds.meta["notes"]))
    return ds


def load_datasets(sources: Sequence[tuple[str | Path | Dataset | None, Optional[str]]],
                  **options: Any) -> list[Optional[Dataset]]:
    """Parse several datasets, each ``(root, format)``, with the same ``options`` (one
    ``--cam-regex`` for a command's source and target). A root that is already a `Dataset`
    is returned as it is, None stays None. An option that a layout does not take is logged
    at debug level when several datasets are read (a market source and a folder target
    with ``cam_regex``), and as one warning when none of the datasets read takes it; with
    one dataset this is `load_dataset`.
    """
    read = [(root, fmt) for root, fmt in sources if root is not None and not isinstance(root, Dataset)]
    several = len(read) > 1
    out = [root if root is None or isinstance(root, Dataset)
           else load_dataset(root, fmt, quiet_unused=several, **options)
           for root, fmt in sources]
    if several:
        loaded = [ds.format for ds, (root, _) in zip(out, sources)
                  if ds is not None and not isinstance(root, Dataset)]
        for k in sorted(k for k, v in options.items() if v is not None):
            if not any(f in _takers(k) for f in loaded):
                log.warning("%s", _ignored(k, loaded))
    return out
