"""Helpers shared by the layout parsers: image listing, required paths, list files.

Every parser returns a `Dataset` whose split lists are sorted by path, with paths relative
to the dataset folder (POSIX separators) and 0-based camera ids. A malformed tree raises
`InputError` naming the offending path and how to fix it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from reidcli.data.records import Dataset, Record
from reidcli.utils.errors import InputError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
SPLIT_ORDER = ("train", "val", "query", "gallery")


def is_image_name(name: str) -> bool:
    """True for a visible file whose extension is an image type (``._x.jpg`` is not)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTS


def unreadable(exc: OSError) -> InputError:
    """A folder of the dataset that cannot be listed (permissions, a symlink loop, I/O)."""
    return InputError(f"{exc.filename}: cannot be read ({exc.strerror or exc}); fix its permissions, "
                      "or move it out of the dataset folder")


def _raise(exc: OSError) -> None:
    raise unreadable(exc)


def read_text(path: Path) -> str:
    """A list file's text (UTF-8, a BOM allowed); another encoding is one clear error."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the list as "
                         "UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def image_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside ``folder`` (other files ignored)."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if is_image_name(e.name) and e.is_file())
    except OSError as exc:
        raise unreadable(exc) from None


def walk_images(folder: Path) -> Iterator[str]:
    """Relative POSIX paths of every image below ``folder`` (hidden folders skipped), sorted;
    a sub-folder that cannot be listed is an error, not silently left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        out.extend(prefix + f for f in filenames if is_image_name(f))
    return iter(sorted(out))


def has_images(folder: Path) -> bool:
    """True as soon as one image is found below ``folder`` (hidden folders skipped)."""
    for _, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(is_image_name(f) for f in filenames):
            return True
    return False


def subdirs(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder``."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise unreadable(exc) from None


def require_dir(path: Path, what: str, fix: str = "") -> Path:
    if not path.is_dir():
        hint = f"; {fix}" if fix else ""
        raise InputError(f"{path}: missing {what} folder{hint}")
    return path


def require_file(path: Path, what: str, fix: str = "") -> Path:
    if not path.is_file():
        hint = f"; {fix}" if fix else ""
        raise InputError(f"{path}: missing {what}{hint}")
    return path


def require_images(recs: list[Record], where: Path, what: str) -> list[Record]:
    if not recs:
        raise InputError(f"{where}: no images for the {what} split; the folder or list is empty")
    return recs


class ExistenceCache:
    """Checks that listed images exist with one directory listing per folder, not one
    ``stat`` per image (MSMT17 lists 126k images)."""

    def __init__(self, root: Path):
        self.root = root
        self._dirs: dict[str, frozenset[str]] = {}

    def exists(self, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        if parent not in self._dirs:
            folder = self.root / parent if parent else self.root
            try:
                with os.scandir(folder) as it:
                    self._dirs[parent] = frozenset(e.name for e in it)
            except OSError:
                self._dirs[parent] = frozenset()
        return name in self._dirs[parent]


@dataclass
class ListLine:
    path: str
    label: int
    lineno: int


def read_list_file(path: Path) -> list[ListLine]:
    """Parse ``<relative/path> <int label>`` lines (MSMT17 and RegDB list files)."""
    out = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise InputError(f"{path}:{i}: expected '<image path> <integer id>', got {line.strip()!r}")
        out.append(ListLine(parts[0].replace("\\", "/"), int(parts[1]), i))
    if not out:
        raise InputError(f"{path}: empty list file")
    return out


def check_listed(lines: list[ListLine], prefix: str, cache: ExistenceCache, list_path: Path) -> None:
    """Refuse a list file that names an image missing under the dataset folder."""
    for ln in lines:
        rel = f"{prefix}{ln.path}"
        if not cache.exists(rel):
            raise InputError(f"{list_path}:{ln.lineno} names {cache.root / rel}, which does not exist; "
                             "restore the image or fix the list")


@dataclass
class Notes:
    """What a parser dropped or assumed; goes into ``Dataset.meta['notes']``."""

    items: list[str] = field(default_factory=list)

    def add(self, n: int, text: str) -> None:
        if n:
            self.items.append(f"{n} {text}")


def make_dataset(root: Path, fmt: str, splits: dict[str, list[Record]], **meta) -> Dataset:
    """Sort every split by path and order splits train, val, query, gallery, then others."""
    order = {name: i for i, name in enumerate(SPLIT_ORDER)}
    names = sorted(splits, key=lambda s: (order.get(s, len(order)), s))
    ordered = {s: sorted(splits[s], key=lambda r: r.path) for s in names}
    return Dataset(root=root, format=fmt, splits=ordered, meta=meta)


@dataclass(frozen=True)
class Layout:
    """One dataset layout: how to recognise a folder of it and how to parse it.

    ``matches(folder)`` is True when ``folder`` itself looks like this layout (even an
    incomplete one, so that `load` can name what is missing); ``load(folder, **options)``
    returns the `Dataset`. ``expects`` describes the layout for error messages.
    """

    name: str
    matches: Callable[[Path], bool]
    load: Callable[..., Dataset]
    expects: str
    options: tuple[str, ...] = ()
    generic: bool = False  # folder / unlabelled / csv: only tried on the root itself, last


def first_match(names: Iterable[str], patterns: dict[str, re.Pattern], limit: int = 50) -> Optional[str]:
    """The key of the pattern that matches most of the first ``limit`` names."""
    counts = dict.fromkeys(patterns, 0)
    for i, name in enumerate(names):
        if i >= limit:
            break
        for key, pat in patterns.items():
            if pat.match(name):
                counts[key] += 1
    best = max(counts, key=counts.get) if counts else None
    return best if best is not None and counts[best] > 0 else None
