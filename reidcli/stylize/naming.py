"""Names and layout files of styled images: DATA's own layout and naming with the *style*
camera, so the layout parser reads the styled tree back with the same ids and the target
camera.

Supported layouts (`writer_for`):

- market1501, dukemtmc, cuhk03: ``<pid>_c<cam>...`` names; the camera number is rewritten.
- msmt17: the third ``_`` field of ``<pid>_<idx>_<cam:02d>_...`` names is rewritten; the
  styled splits' list files (``list_train.txt`` ...) list the styled images with their
  original labels (list_val images, part of ``train``, stay in ``list_val.txt``); the lists
  of splits not styled are copied.
- sysu: an image of ``cam<c>/<pid>/<img>`` moves to ``cam<style>/<pid>/<img>`` (the
  modality follows the camera, as the parser has it); ``exp/`` is linked. Only ``train`` is
  styled: query and gallery are drawn by camera (infrared / visible), so a styled test
  image would change split.
- csv: ``<stem>_c<style><ext>`` beside the original, and a CSV of the same name as DATA's
  with ``path,pid,camid,modality,split`` rows (camid the 0-based style camera) for the
  styled images and DATA's other splits; read back with ``load_dataset(STYLED/<name>.csv)``.

Refused with one line: regdb (its two cameras are its two modalities) and the folder /
unlabelled layouts (their cameras come only from a ``--cam-regex``, mapped to ids by rank
of the values present, so a file name cannot be made to carry a given camera id).

Images of splits not styled are linked: a whole top-level folder when no styled image goes
into it, else file by file. A name that would collide (two source cameras mapping the same
frame onto one camera, or a linked original) gets its last number bumped until it is
unique, as ``reid synth`` does.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from reidcli.utils.errors import InputError

BBOX_FORMATS = ("market1501", "dukemtmc", "cuhk03")
SUPPORTED = (*BBOX_FORMATS, "msmt17", "sysu", "csv")
_CAM = re.compile(r"^(-1|\d+)_c\d+")
_LAST_NUMBER = re.compile(r"(\d+)(\D*)$")


def _split_rel(rel: str) -> tuple[str, str, str]:
    folder, _, base = rel.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    return (folder, stem, f".{ext}") if dot else (folder, base, "")


def _join(folder: str, stem: str, ext: str) -> str:
    return f"{folder}/{stem}{ext}" if folder else f"{stem}{ext}"


class Namer:
    """``name(rel, cam)``: the styled image's relative path for 0-based camera ``cam``;
    ``rename(rel, cam)`` gives the candidate (default: the ``<pid>_c<cam>`` rewrite),
    ``used`` the paths already taken (linked originals)."""

    def __init__(self, rename: Optional[Callable[[str, int], str]] = None, used: Iterable[str] = ()) -> None:
        self.rename = rename or _bbox_name
        self.used: set[str] = set(used)

    def name(self, rel: str, cam: int) -> str:
        folder, new, ext = _split_rel(self.rename(rel, cam))
        out = _join(folder, new, ext)
        while out in self.used:
            bumped = _LAST_NUMBER.sub(lambda m: f"{int(m[1]) + 1:0{len(m[1])}d}{m[2]}", new, count=1)
            new = bumped if bumped != new else f"{new}_1"
            out = _join(folder, new, ext)
        self.used.add(out)
        return out


def _bbox_name(rel: str, cam: int) -> str:
    folder, stem, ext = _split_rel(rel)
    return _join(folder, _CAM.sub(lambda m: f"{m[1]}_c{cam + 1}", stem, count=1), ext)


def _msmt_name(rel: str, cam: int) -> str:
    folder, stem, ext = _split_rel(rel)
    fields = stem.split("_")
    fields[2] = f"{cam + 1:02d}"
    return _join(folder, "_".join(fields), ext)


def _sysu_name(rel: str, cam: int) -> str:
    return f"cam{cam + 1}/{rel.split('/', 1)[1]}"


def _csv_name(rel: str, cam: int) -> str:
    folder, stem, ext = _split_rel(rel)
    return _join(folder, f"{stem}_c{cam + 1}", ext)


def _top(rel: str) -> str:
    return rel.split("/", 1)[0]


class Writer:
    """How one layout writes a styled tree (module docstring)."""

    def __init__(self, fmt: str, rename: Callable[[str, int], str], max_cam: Optional[int] = None,
                 splits: Optional[tuple[str, ...]] = None) -> None:
        self.fmt, self.rename, self.max_cam, self.splits = fmt, rename, max_cam, splits

    def check(self, ds, split: Sequence[str], targets: Sequence[int]) -> None:
        if self.splits is not None:
            bad = [s for s in split if s not in self.splits]
            if bad:
                raise InputError(f"--split {bad[0]}: a {self.fmt} dataset draws its test splits by camera, so "
                                 f"a styled test image would change split; style {' / '.join(self.splits)} only")
        if self.max_cam is not None and any(t + 1 > self.max_cam for t in targets):
            raise InputError(f"--cams: camera c{max(targets) + 1} cannot be written in {self.fmt} names "
                             f"(cameras 1..{self.max_cam}); pick cameras of that range")

    def styled_tops(self, ds, styled: list, targets: Sequence[int]) -> set[str]:
        """Top-level entries that hold styled images (created as folders, not links)."""
        tops = {_top(r.path) for r in styled}
        if self.fmt == "sysu":
            tops |= {_top(r.path) for s in ds.splits for r in ds.split(s)} | {f"cam{t + 1}" for t in targets}
        return tops

    def index(self, tmp: Path, ds, split: Sequence[str], rows: list[dict]) -> None:
        """The layout's own files beside the images (list files, id files, the CSV)."""
        if self.fmt == "msmt17":
            _msmt_lists(tmp, ds, rows)
        elif self.fmt == "sysu":
            (tmp / "exp").symlink_to((ds.root / "exp").resolve(), target_is_directory=True)
        elif self.fmt == "csv":
            _csv_list(tmp, ds, split, rows)


def writer_for(ds) -> Writer:
    """The `Writer` of ``ds``'s layout; an unsupported one is a one-line `InputError`."""
    fmt, root = ds.format, ds.root
    if fmt in BBOX_FORMATS:
        return Writer(fmt, _bbox_name)
    if fmt == "msmt17":
        from reidcli.data.layouts.msmt17 import N_CAMERAS

        return Writer(fmt, _msmt_name, N_CAMERAS)
    if fmt == "sysu":
        from reidcli.data.layouts.sysu import CAMERAS

        return Writer(fmt, _sysu_name, max(CAMERAS), splits=("train",))
    if fmt == "csv":
        return Writer(fmt, _csv_name)
    if fmt == "regdb":
        raise InputError(f"{root} is a regdb dataset: its two cameras are its two modalities (visible, "
                         "thermal), so a camera style cannot be written in it; convert it to a csv list")
    if fmt in ("folder", "unlabelled"):
        raise InputError(f"{root} is a {fmt} dataset: its cameras come only from a --cam-regex (ids by rank of "
                         "the values found), so its names cannot carry a style camera; convert it to a csv "
                         "list (path,pid,camid) or a Market-1501 tree")
    raise InputError(f"{root} is a {fmt} dataset; 'reid stylize apply' writes the "
                     f"{', '.join(SUPPORTED)} layouts; convert it to one of those")


@dataclass(frozen=True)
class TreeLayout:
    """Where a styled tree's files go, worked out once per run (`tree_layout`) for both the
    names of the styled images (`linked`) and the tree around them (`build_tree`)."""

    tops: frozenset[str]  # top-level entries holding styled images: folders, not links
    kept: tuple[str, ...]  # DATA's image paths of the splits not styled, each once, in order

    @property
    def linked(self) -> set[str]:
        """Paths a styled name must not take: originals linked file by file."""
        return {p for p in self.kept if _top(p) in self.tops}


def tree_layout(ds, writer: Writer, split: Sequence[str], targets: Sequence[int]) -> TreeLayout:
    """The `TreeLayout` of styling ``split`` of ``ds`` to cameras ``targets``."""
    styled = [r for s in split for r in ds.split(s)]
    styled_paths = {r.path for r in styled}
    kept = dict.fromkeys(r.path for s in ds.splits for r in ds.split(s) if r.path not in styled_paths)
    return TreeLayout(frozenset(writer.styled_tops(ds, styled, targets)), tuple(kept))


def build_tree(tmp: Path, ds, writer: Writer, split: Sequence[str], layout: TreeLayout, rows: list[dict]) -> None:
    """Everything of the styled tree but the styled images: their folders, links to DATA's
    images of splits not styled, and the layout's files."""
    for top in sorted(layout.tops):
        (tmp / top).mkdir(exist_ok=True)
    for rel in layout.kept:
        if _top(rel) in layout.tops:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).symlink_to((ds.root / rel).resolve())
        elif not (tmp / _top(rel)).is_symlink():
            (tmp / _top(rel)).symlink_to((ds.root / _top(rel)).resolve(), target_is_directory=True)
    writer.index(tmp, ds, split, rows)


def _by_original(ds, rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["original"], []).append(row)
    return out


def _msmt_lists(tmp: Path, ds, rows: list[dict]) -> None:
    from reidcli.data.layouts.msmt17 import LISTS

    by_orig = _by_original(ds, rows)
    val = {r.path for r in ds.split("val")} if "val" in ds.splits else set()
    for key, name in LISTS.items():
        src = ds.root / name
        if not src.is_file():
            continue
        recs = [r for r in ds.split(key) if key != "train" or r.path not in val]
        if not any(str(ds.abspath(r)) in by_orig for r in recs):
            shutil.copyfile(src, tmp / name)
            continue
        lines = [f"{row['output'].split('/', 1)[1]} {row['pid']}\n"
                 for r in recs for row in by_orig.get(str(ds.abspath(r)), [])]
        (tmp / name).write_text("".join(lines))


def _csv_list(tmp: Path, ds, split: Sequence[str], rows: list[dict]) -> None:
    by_orig = _by_original(ds, rows)
    styled = set(split)
    with open(tmp / Path(ds.meta["csv"]).name, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("path", "pid", "camid", "modality", "split"))
        for s in ds.splits:
            for r in ds.split(s):
                if s not in styled:
                    w.writerow((r.path, r.pid, r.camid, r.modality, s))
                    continue
                for row in by_orig.get(str(ds.abspath(r)), []):
                    w.writerow((row["output"], r.pid, int(row["style_cam"]) - 1, r.modality, s))


def styled_dataset_path(out: os.PathLike | str, ds) -> Path:
    """What to give the layout parser to read a styled tree back (the CSV for csv data)."""
    return Path(out) / Path(ds.meta["csv"]).name if ds.format == "csv" else Path(out)
