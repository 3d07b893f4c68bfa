"""SYSU-MM01 (Wu et al., "RGB-Infrared Cross-Modality Person Re-Identification", ICCV 2017).

``cam1``..``cam6`` folders of ``<pid:04d>/<img:04d>.jpg``; ``exp/train_id.txt``,
``exp/val_id.txt`` and ``exp/test_id.txt`` hold comma-separated identity ids. Cameras
1, 2, 4, 5 are visible (modality 0), 3 and 6 infrared (modality 1).

Splits follow the official protocol: train = train + val ids over all cameras; query =
test ids seen by the infrared cameras 3 and 6; gallery = every image of the test ids seen
by the visible cameras 1, 2, 4, 5 (evaluation draws the single-/multi-shot galleries and
the indoor-search subset, cameras 1 and 2, from it).
"""

from __future__ import annotations

import re
from pathlib import Path

from reidcli.data.layouts._common import (
    Layout, Notes, image_names, make_dataset, read_text, require_dir, require_file, require_images, subdirs,
)
from reidcli.data.records import INFRARED, VISIBLE, Dataset, Record
from reidcli.utils.errors import InputError

CAMERAS = range(1, 7)
INFRARED_CAMS = frozenset({3, 6})
ID_FILES = {"train": "train_id.txt", "val": "val_id.txt", "test": "test_id.txt"}


def matches(folder: Path) -> bool:
    """``exp/train_id.txt``, or two ``cam<c>/`` folders holding ``<pid>/`` folders (a plain
    ``cam1/*.jpg`` collection is an unlabelled folder, not SYSU-MM01)."""
    if (folder / "exp" / ID_FILES["train"]).is_file():
        return True
    cams = [folder / f"cam{c}" for c in CAMERAS if (folder / f"cam{c}").is_dir()]
    return len(cams) >= 2 and any(d.isdigit() for cam in cams for d in subdirs(cam)[:5])


def read_ids(path: Path) -> list[int]:
    text = read_text(path)
    tokens = [t for t in re.split(r"[,\s]+", text) if t]
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        raise InputError(f"{path}: {bad[0]!r} is not an identity id; expected comma-separated integers")
    return [int(t) for t in tokens]


def scan_cameras(root: Path) -> dict[int, list[Record]]:
    """Records of every ``cam<c>/<pid>/<image>``, grouped by pid."""
    by_pid: dict[int, list[Record]] = {}
    cams = [c for c in CAMERAS if (root / f"cam{c}").is_dir()]
    if not any(c in INFRARED_CAMS for c in cams) or all(c in INFRARED_CAMS for c in cams):
        raise InputError(f"{root}: SYSU-MM01 needs visible (cam1, cam2, cam4, cam5) and infrared "
                         f"(cam3, cam6) folders; found {', '.join(f'cam{c}' for c in cams) or 'none'}")
    for c in cams:
        mod = INFRARED if c in INFRARED_CAMS else VISIBLE
        for pid_dir in subdirs(root / f"cam{c}"):
            if not pid_dir.isdigit():
                raise InputError(f"{root / f'cam{c}' / pid_dir}: not an identity folder "
                                 "(SYSU-MM01 uses cam<c>/<pid:04d>/<img:04d>.jpg)")
            recs = by_pid.setdefault(int(pid_dir), [])
            recs += [Record(f"cam{c}/{pid_dir}/{n}", int(pid_dir), c - 1, mod)
                     for n in image_names(root / f"cam{c}" / pid_dir)]
    return by_pid


def _gather(by_pid: dict[int, list[Record]], ids: list[int], id_file: Path) -> list[Record]:
    out = []
    for pid in ids:
        if not by_pid.get(pid):
            raise InputError(f"{id_file} lists id {pid}, but no cam*/{pid:04d}/ folder holds an image of it")
        out += by_pid[pid]
    return out


def load(root: Path, **_) -> Dataset:
    exp = require_dir(root / "exp", "SYSU-MM01 exp", "it holds train_id.txt, val_id.txt, test_id.txt")
    ids = {}
    for key, name in ID_FILES.items():
        if key == "val" and not (exp / name).is_file():
            continue
        ids[key] = read_ids(require_file(exp / name, "SYSU-MM01 id file"))
    overlap = set(ids["test"]) & (set(ids["train"]) | set(ids.get("val", [])))
    if overlap:
        raise InputError(f"{exp / ID_FILES['test']}: ids {sorted(overlap)[:5]} are also training ids")
    by_pid, notes = scan_cameras(root), Notes()
    train = _gather(by_pid, ids["train"], exp / ID_FILES["train"])
    if "val" in ids:
        val = _gather(by_pid, ids["val"], exp / ID_FILES["val"])
        train += val
        notes.items.append(f"train includes the {len({r.pid for r in val})} val ids")
    test = _gather(by_pid, ids["test"], exp / ID_FILES["test"])
    query = [r for r in test if r.modality == INFRARED]
    gallery = [r for r in test if r.modality == VISIBLE]
    require_images(query, root, "query (infrared test)")
    require_images(gallery, root, "gallery (visible test)")
    listed = set(ids["train"]) | set(ids.get("val", [])) | set(ids["test"])
    notes.add(sum(len(v) for p, v in by_pid.items() if p not in listed), "images of unlisted ids ignored")
    return make_dataset(root, "sysu", {"train": train, "query": query, "gallery": gallery},
                        notes=notes.items, protocol="sysu",
                        infrared_cameras=sorted(c - 1 for c in INFRARED_CAMS))


SYSU = Layout("sysu", matches, load, "cam1..cam6/<pid>/<img>.jpg folders and exp/ id files")
