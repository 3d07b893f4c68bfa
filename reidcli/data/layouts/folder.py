"""Generic layouts: a labelled folder of ``<pid>/<image>`` and an unlabelled folder.

Labelled: every top-level folder is an integer identity holding its images (at any
depth); or the top level holds split folders (``train/``, ``query/``, ``gallery/``,
``val/``, ``test/``) that each look like that. Unlabelled: every image below the root,
pid -1, one ``train`` split (the target domain of unsupervised adaptation).

Cameras come from ``cam_regex`` matched (``re.search``) against each relative path: the
named group ``cam`` or else group 1; the values found are mapped to 0..C-1 in sorted order
(numerically when all are integers). Without a regex every image is camera 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from reidcli.data.layouts._common import (
    IMAGE_EXTS, Layout, has_images, is_image_name, make_dataset, subdirs, walk_images,
)
from reidcli.data.records import Dataset, Record
from reidcli.utils.errors import ConfigError, InputError

SPLIT_DIRS = ("train", "val", "query", "gallery", "test")
_PID = re.compile(r"-?\d+")


def _top_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and is_image_name(p.name))


def _is_pid_tree(folder: Path) -> bool:
    dirs = subdirs(folder)
    return bool(dirs) and all(_PID.fullmatch(d) for d in dirs) and not _top_files(folder)


def split_dirs(folder: Path) -> list[str]:
    """The split folders of a labelled tree, or [] when the root is itself a pid tree."""
    dirs = subdirs(folder)
    if dirs and all(d in SPLIT_DIRS for d in dirs) and all(_is_pid_tree(folder / d) for d in dirs):
        return dirs
    return []


def matches_labelled(folder: Path) -> bool:
    return _is_pid_tree(folder) or bool(split_dirs(folder))


def matches_unlabelled(folder: Path) -> bool:
    return has_images(folder)


def compile_cam_regex(cam_regex: Optional[str]) -> Optional[re.Pattern]:
    if cam_regex is None:
        return None
    try:
        pat = re.compile(cam_regex)
    except re.error as exc:
        raise ConfigError(f"--cam-regex '{cam_regex}' is not a valid regular expression: {exc}") from None
    if pat.groups < 1:
        raise ConfigError(f"--cam-regex '{cam_regex}' needs a group that captures the camera, "
                          r"e.g. '_c(\d+)' or '(?P<cam>cam\d+)/'")
    return pat


def assign_cameras(root: Path, splits: dict[str, list[tuple[str, int]]],
                   pat: Optional[re.Pattern]) -> tuple[dict[str, list[Record]], dict]:
    """Turn ``(path, pid)`` pairs into records, with cameras from ``pat`` (see module doc)."""
    if pat is None:
        return {s: [Record(p, pid, 0) for p, pid in items] for s, items in splits.items()}, {}
    raw: dict[str, str] = {}
    for items in splits.values():
        for path, _ in items:
            m = pat.search(path)
            value = m and (m.groupdict().get("cam") or m.group(1))
            if not value:
                raise InputError(f"{root / path}: --cam-regex '{pat.pattern}' finds no camera in "
                                 f"{path!r}; fix the regex or the file name")
            raw[path] = value
    values = set(raw.values())
    key = (lambda v: (int(v), v)) if all(v.isdigit() for v in values) else (lambda v: (0, v))
    mapping = {v: i for i, v in enumerate(sorted(values, key=key))}
    recs = {s: [Record(p, pid, mapping[raw[p]]) for p, pid in items] for s, items in splits.items()}
    return recs, {"cameras": {v: i for v, i in mapping.items()}}


def _pid_tree(root: Path, prefix: str) -> list[tuple[str, int]]:
    base = root / prefix if prefix else root
    stray = _top_files(base)
    if stray:
        raise InputError(f"{base / stray[0]}: an image outside any <pid>/ folder; the labelled folder "
                         "layout is <pid>/<image> (use --format unlabelled for a flat folder)")
    items = []
    for d in subdirs(base):
        if not _PID.fullmatch(d):
            raise InputError(f"{base / d}: '{d}' is not an integer identity; the labelled folder "
                             "layout is <pid>/<image>")
        pre = f"{prefix}/{d}/" if prefix else f"{d}/"
        items += [(pre + rel, int(d)) for rel in walk_images(base / d)]
    return items


def load_labelled(root: Path, cam_regex: Optional[str] = None, **_) -> Dataset:
    pat = compile_cam_regex(cam_regex)
    names = split_dirs(root) or [""]
    pairs = {}
    for name in names:
        items = _pid_tree(root, name)
        if not items:
            raise InputError(f"{root / name if name else root}: no images inside the <pid>/ folders")
        pairs[name or "train"] = items
    splits, meta = assign_cameras(root, pairs, pat)
    return make_dataset(root, "folder", splits, **meta)


def load_unlabelled(root: Path, cam_regex: Optional[str] = None, **_) -> Dataset:
    pat = compile_cam_regex(cam_regex)
    items = [(rel, -1) for rel in walk_images(root)]
    if not items:
        raise InputError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTS))} "
                         "files at any depth)")
    splits, meta = assign_cameras(root, {"train": items}, pat)
    return make_dataset(root, "unlabelled", splits, **meta)


FOLDER = Layout("folder", matches_labelled, load_labelled,
                "<pid>/<image> folders (optionally inside train/, query/, gallery/)",
                options=("cam_regex",), generic=True)
UNLABELLED = Layout("unlabelled", matches_unlabelled, load_unlabelled, "image files at any depth",
                    options=("cam_regex",), generic=True)
