"""MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018), versions V1 and V2.

``train/`` (V2: ``mask_train_v2/``) and ``test/`` (``mask_test_v2/``) image folders and
four list files of ``0000/0000_000_01_0303morning_0015_0.jpg 0`` lines (path relative to
the image folder, then the identity label). The camera is the third ``_`` field (01..15).
As is standard (torchreid, fast-reid), train is list_train + list_val; ``val`` is also
exposed on its own.
"""

from __future__ import annotations

from pathlib import Path

from reidcli.data.layouts._common import (
    ExistenceCache, Layout, ListLine, Notes, check_listed, make_dataset, read_list_file,
)
from reidcli.data.records import Dataset, Record
from reidcli.utils.errors import InputError

LISTS = {"train": "list_train.txt", "val": "list_val.txt", "query": "list_query.txt",
         "gallery": "list_gallery.txt"}
IMAGE_DIRS = {"train": ("train", "mask_train_v2"), "test": ("test", "mask_test_v2")}
N_CAMERAS = 15


def matches(folder: Path) -> bool:
    return any((folder / name).is_file() for name in LISTS.values())


def _image_dir(root: Path, kind: str) -> str:
    for name in IMAGE_DIRS[kind]:
        if (root / name).is_dir():
            return name
    raise InputError(f"{root / IMAGE_DIRS[kind][0]}: missing MSMT17 {kind} image folder "
                     f"(expected {' or '.join(d + '/' for d in IMAGE_DIRS[kind])})")


def _camid(line: ListLine, list_path: Path) -> int:
    fields = line.path.rsplit("/", 1)[-1].split("_")
    cam = fields[2] if len(fields) > 3 else ""
    if not cam.isdigit() or not 1 <= int(cam) <= N_CAMERAS:
        raise InputError(f"{list_path}:{line.lineno}: {line.path!r} is not an MSMT17 image name "
                         "(expected e.g. 0000/0000_000_01_0303morning_0015_0.jpg, camera 01..15)")
    return int(cam) - 1


def _records(root: Path, split: str, prefix: str, cache: ExistenceCache) -> list[Record]:
    path = root / LISTS[split]
    lines = read_list_file(path)
    check_listed(lines, prefix, cache, path)
    for ln in lines:
        if ln.label < 0:
            raise InputError(f"{path}:{ln.lineno}: identity label {ln.label}; MSMT17 labels are >= 0")
    return [Record(prefix + ln.path, ln.label, _camid(ln, path)) for ln in lines]


def load(root: Path, **_) -> Dataset:
    for split in ("train", "query", "gallery"):
        if not (root / LISTS[split]).is_file():
            raise InputError(f"{root / LISTS[split]}: missing MSMT17 list file; an MSMT17 folder holds "
                             f"{', '.join(LISTS.values())} and train/, test/")
    train_dir, test_dir = _image_dir(root, "train"), _image_dir(root, "test")
    cache, notes = ExistenceCache(root), Notes()
    splits = {s: _records(root, s, f"{test_dir}/", cache) for s in ("query", "gallery")}
    train = _records(root, "train", f"{train_dir}/", cache)
    if (root / LISTS["val"]).is_file():
        val = _records(root, "val", f"{train_dir}/", cache)
        splits["val"] = val
        train = train + val
        notes.items.append(f"train includes the {len(val)} list_val images")
    else:
        notes.items.append("no list_val.txt; train is list_train only")
    splits["train"] = train
    version = "V2" if train_dir.startswith("mask") else "V1"
    return make_dataset(root, "msmt17", splits, notes=notes.items, version=version)


MSMT17 = Layout("msmt17", matches, load, "list_train.txt, list_val.txt, list_query.txt, "
                "list_gallery.txt with train/ and test/ image folders")
