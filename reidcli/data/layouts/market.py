"""Market-1501, DukeMTMC-reID and CUHK03-NP: ``bounding_box_train/``, ``query/``,
``bounding_box_test/`` folders of ``<pid>_c<cam>...`` images.

Protocol (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015, and
the official Market-1501 evaluation code): pid ``-1`` marks junk boxes and ``0000``
distractors. Both are dropped from train (and from query, which has none officially);
the gallery keeps junk as pid -1, which evaluation ignores, and distractors as pid 0, an
ordinary negative. DukeMTMC-reID (Zheng et al., ICCV 2017) and CUHK03-NP (the new
protocol of Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017) reuse the folders with their own file names.
"""

from __future__ import annotations

import os
import re
from itertools import islice
from pathlib import Path
from typing import Optional

from reidcli.data.layouts._common import (
    Layout, Notes, first_match, image_names, is_image_name, make_dataset, require_dir, require_images, subdirs,
)
from reidcli.data.records import Dataset, Record
from reidcli.utils.errors import ConfigError, InputError

FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_EXT = r"\.(?:jpe?g|png|bmp)$"
PATTERNS = {
    "market1501": re.compile(r"^(?P<pid>-1|\d+)_c(?P<cam>\d+)s\d+_\d+_\d+" + _EXT, re.I),
    "dukemtmc": re.compile(r"^(?P<pid>-1|\d+)_c(?P<cam>\d+)_f\d+" + _EXT, re.I),
    "cuhk03": re.compile(r"^(?P<pid>-1|\d+)_c(?P<cam>\d+)_\d+" + _EXT, re.I),
}
EXAMPLES = {"market1501": "0002_c1s1_000451_03.jpg", "dukemtmc": "0001_c2_f0046182.jpg",
            "cuhk03": "0001_c1_1.png"}
EXPECTS = "bounding_box_train/, query/ and bounding_box_test/ folders"
CUHK03_VARIANTS = ("detected", "labeled")


def is_bbox_tree(folder: Path) -> bool:
    """A ``bounding_box_*`` folder marks the layout (``query/`` alone may be a split folder)."""
    return (folder / FOLDERS["train"]).is_dir() or (folder / FOLDERS["gallery"]).is_dir()


def flavour(folder: Path) -> Optional[str]:
    """Which of Market / Duke / CUHK03-NP the image names of a bbox tree follow."""
    names: list[str] = []
    for sub in FOLDERS.values():
        if (folder / sub).is_dir():
            with os.scandir(folder / sub) as it:  # a sample is enough: no full listing
                names += islice((e.name for e in it if is_image_name(e.name)), 20)
    return first_match(names, PATTERNS)


def parse_folder(root: Path, sub: str, fmt: str) -> list[Record]:
    """Every image of ``root/sub`` as a record (junk and distractors included)."""
    folder, pattern, recs = root / sub, PATTERNS[fmt], []
    for name in image_names(folder):
        m = pattern.match(name)
        if m is None:
            raise InputError(f"{folder / name}: not a {fmt} image name (expected e.g. "
                             f"{EXAMPLES[fmt]}); rename or remove it, or use --format unlabelled")
        cam = int(m["cam"])
        if cam < 1:
            raise InputError(f"{folder / name}: camera c{cam}; {fmt} cameras are numbered from c1")
        recs.append(Record(f"{sub}/{name}", int(m["pid"]), cam - 1))
    return recs


def load_bbox(root: Path, fmt: str, **meta) -> Dataset:
    """Parse the three folders with the junk / distractor protocol of the module docstring."""
    for sub in FOLDERS.values():
        require_dir(root / sub, sub, f"a {fmt} tree needs {EXPECTS}")
    notes, splits = Notes(), {}
    for split, sub in FOLDERS.items():
        recs = require_images(parse_folder(root, sub, fmt), root / sub, split)
        if split != "gallery":
            junk = sum(r.pid == -1 for r in recs)
            distractors = sum(r.pid == 0 for r in recs)
            recs = [r for r in recs if r.pid > 0]
            notes.add(junk, f"junk (-1) images dropped from {split}")
            notes.add(distractors, f"distractor (0000) images dropped from {split}")
            require_images(recs, root / sub, split)
        splits[split] = recs
    gal = splits["gallery"]
    meta.update(junk_in_gallery=sum(r.pid == -1 for r in gal),
                distractors_in_gallery=sum(r.pid == 0 for r in gal))
    return make_dataset(root, fmt, splits, notes=notes.items, **meta)


def _load_market(root: Path) -> Dataset:
    return load_bbox(root, "market1501")


def _load_duke(root: Path) -> Dataset:
    return load_bbox(root, "dukemtmc")


def _is_cuhk03_top(folder: Path) -> bool:
    return any(is_bbox_tree(folder / v) for v in CUHK03_VARIANTS)


def _load_cuhk03(root: Path, cuhk03_variant: Optional[str] = None) -> Dataset:
    variant = cuhk03_variant or "detected"
    if variant not in CUHK03_VARIANTS:
        raise ConfigError(f"cuhk03_variant must be one of {', '.join(CUHK03_VARIANTS)}; got {variant!r}")
    if _is_cuhk03_top(root):
        found = [d for d in subdirs(root) if d in CUHK03_VARIANTS]
        require_dir(root / variant, f"CUHK03-NP '{variant}'",
                    f"found {', '.join(found) or 'no variant'}; pick another --cuhk03-variant")
        root = root / variant
    elif cuhk03_variant and root.name in CUHK03_VARIANTS and root.name != cuhk03_variant:
        raise ConfigError(f"{root} is the CUHK03-NP '{root.name}' folder but cuhk03_variant is "
                          f"'{cuhk03_variant}'; pass its parent folder or the matching variant")
    elif root.name in CUHK03_VARIANTS:
        variant = root.name
    return load_bbox(root, "cuhk03", variant=variant)


MARKET = Layout("market1501", lambda f: is_bbox_tree(f) and flavour(f) in ("market1501", None),
                lambda root, **_: _load_market(root), f"{EXPECTS} of 0002_c1s1_000451_03.jpg images")
DUKE = Layout("dukemtmc", lambda f: is_bbox_tree(f) and flavour(f) == "dukemtmc",
              lambda root, **_: _load_duke(root), f"{EXPECTS} of 0001_c2_f0046182.jpg images")
CUHK03 = Layout("cuhk03", lambda f: _is_cuhk03_top(f) or (is_bbox_tree(f) and flavour(f) == "cuhk03"),
                lambda root, cuhk03_variant=None, **_: _load_cuhk03(root, cuhk03_variant),
                "detected/ and labeled/ folders, each with " + EXPECTS, options=("cuhk03_variant",))
