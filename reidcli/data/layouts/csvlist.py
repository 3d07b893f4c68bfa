"""A CSV list of images: ``path,pid,camid[,modality][,split]``.

The header is optional. With a header, columns are found by name (``path``, ``pid``,
``camid``, optional ``modality`` and ``split``; ``image``/``id``/``cam``/``camera`` are
accepted too). Without one, columns are positional; a fourth column that is not an
integer is the split. Paths are relative to the CSV's folder, or to the dataset folder
when one is given together with ``csv=``. Rows without a split go to ``train``.
pid -1 = unknown identity; camid is 0-based; modality 0 visible, 1 infrared.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Optional

from reidcli.data.layouts._common import ExistenceCache, Layout, make_dataset, read_text
from reidcli.data.records import Dataset, Record
from reidcli.utils.errors import InputError

ALIASES = {"path": "path", "image": "path", "img": "path", "file": "path", "pid": "pid", "id": "pid",
           "person": "pid", "camid": "camid", "cam": "camid", "camera": "camid",
           "modality": "modality", "mod": "modality", "split": "split"}
_INT = re.compile(r"-?\d+")


def matches(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".csv"


def _columns(first: list[str], path: Path) -> tuple[dict[str, int], bool]:
    """Column index per field, and whether ``first`` is a header row."""
    cells = [c.strip() for c in first]
    if len(cells) >= 2 and not _INT.fullmatch(cells[1]):
        cols = {ALIASES.get(c.lower(), c.lower()): i for i, c in enumerate(cells)}
        missing = [k for k in ("path", "pid", "camid") if k not in cols]
        if missing:
            raise InputError(f"{path}: header {','.join(cells)!r} lacks column(s) {', '.join(missing)}; "
                             "expected path,pid,camid[,modality][,split]")
        return cols, True
    if not 3 <= len(cells) <= 5:
        raise InputError(f"{path}:1: expected 3 to 5 columns path,pid,camid[,modality][,split]; got {len(cells)}")
    cols = {"path": 0, "pid": 1, "camid": 2}
    if len(cells) == 4:
        cols["modality" if _INT.fullmatch(cells[3]) else "split"] = 3
    elif len(cells) == 5:
        cols.update(modality=3, split=4)
    return cols, False


def _int(value: str, what: str, lo: int, hi: Optional[int], where: str) -> int:
    v = value.strip()
    if not _INT.fullmatch(v) or int(v) < lo or (hi is not None and int(v) > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise InputError(f"{where}: {what} must be an integer {rng}; got {value!r}")
    return int(v)


def _relpath(raw: str, base: Path, where: str) -> str:
    p = Path(raw.strip().replace("\\", "/"))
    if p.is_absolute():
        try:
            p = p.relative_to(base.resolve())
        except ValueError:
            raise InputError(f"{where}: {raw!r} is outside {base}; list paths relative to it") from None
    rel = p.as_posix()
    if rel in ("", ".") or rel.startswith("../") or "/../" in f"/{rel}":
        raise InputError(f"{where}: {raw!r} is not a path inside {base}")
    return rel[2:] if rel.startswith("./") else rel


def _row(cells: list[str], cols: dict[str, int], base: Path, where: str) -> tuple[str, Record]:
    if len(cells) <= max(cols.values()):
        raise InputError(f"{where}: {len(cells)} columns, expected {max(cols.values()) + 1}")
    split = cells[cols["split"]].strip() if "split" in cols else "train"
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", split):
        raise InputError(f"{where}: split {split!r} must be a word like train, query or gallery")
    rec = Record(_relpath(cells[cols["path"]], base, where),
                 _int(cells[cols["pid"]], "pid", -1, None, where),
                 _int(cells[cols["camid"]], "camid (0-based)", 0, None, where),
                 _int(cells[cols["modality"]], "modality", 0, 1, where) if "modality" in cols else 0)
    return split, rec


def load_csv(csv_path: Path, base: Path) -> Dataset:
    """Parse ``csv_path``; image paths are relative to ``base``."""
    text = io.StringIO(read_text(csv_path), newline="")
    rows = [(i, r) for i, r in enumerate(csv.reader(text), 1)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise InputError(f"{csv_path}: empty CSV list; expected rows path,pid,camid[,modality][,split]")
    cols, header = _columns(rows[0][1], csv_path)
    cache, splits, seen = ExistenceCache(base), {}, set()
    for i, cells in rows[1:] if header else rows:
        where = f"{csv_path}:{i}"
        split, rec = _row(cells, cols, base, where)
        if (split, rec.path) in seen:
            raise InputError(f"{where}: {rec.path} is listed twice in split {split}")
        if not cache.exists(rec.path):
            raise InputError(f"{where} names {base / rec.path}, which does not exist; fix the path "
                             "(paths are relative to the CSV's folder)")
        seen.add((split, rec.path))
        splits.setdefault(split, []).append(rec)
    if not splits:
        raise InputError(f"{csv_path}: only a header, no images listed")
    return make_dataset(base, "csv", splits, csv=str(csv_path))


def load(root: Path, csv: Optional[str | Path] = None, **_) -> Dataset:
    if csv is None:
        if root.is_file():
            return load_csv(root, root.parent)
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise InputError(f"{root}: the csv layout needs the list file; pass the .csv itself "
                             f"(found {len(found)} .csv files in the folder)")
        return load_csv(found[0], root)
    path = Path(csv)
    if not path.is_file() and (root / path).is_file():
        path = root / path
    if not path.is_file():
        raise InputError(f"{path}: no such CSV list; check the path")
    return load_csv(path, root.parent if root.is_file() else root)


CSV = Layout("csv", matches, load, "a .csv list of path,pid,camid[,modality][,split]",
             options=("csv",), generic=True)
