"""RegDB (Nguyen et al., "Person Recognition System Based on a Combination of Body Images
from Visible Light and Thermal Cameras", Sensors 2017), with the 10 random trials of
Ye et al. (the ``idx/`` files used by AGW / DDAG): ``idx/{train,test}_{visible,thermal}_{t}.txt``
of ``Visible/1/female_front_v_00001_1.bmp 0`` lines, images under ``Visible/`` and ``Thermal/``.

Splits: train (both modalities), query = visible test images, gallery = thermal test
images (the visible -> thermal protocol; swap query and gallery for thermal -> visible).
Visible images are camera 0 / modality 0, thermal camera 1 / modality 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from reidcli.data.layouts._common import (
    ExistenceCache, Layout, check_listed, make_dataset, read_list_file, require_dir, require_file,
)
from reidcli.data.records import INFRARED, VISIBLE, Dataset, Record
from reidcli.utils.errors import ConfigError

MODALITY = {"visible": VISIBLE, "thermal": INFRARED}


def matches(folder: Path) -> bool:
    idx = folder / "idx"
    if idx.is_dir() and any(idx.glob("train_visible_*.txt")):
        return True
    return (folder / "Visible").is_dir() and (folder / "Thermal").is_dir()


def _records(root: Path, part: str, modality: str, trial: int, cache: ExistenceCache) -> list[Record]:
    path = require_file(root / "idx" / f"{part}_{modality}_{trial}.txt", f"RegDB list for trial {trial}",
                        "RegDB needs idx/{train,test}_{visible,thermal}_<trial>.txt")
    lines = read_list_file(path)
    check_listed(lines, "", cache, path)
    m = MODALITY[modality]
    return [Record(ln.path, ln.label, camid=m, modality=m) for ln in lines]


def load(root: Path, regdb_trial: Optional[int] = None, **_) -> Dataset:
    trial = 1 if regdb_trial is None else regdb_trial
    if isinstance(trial, bool) or not isinstance(trial, int) or not 1 <= trial <= 10:
        raise ConfigError(f"--regdb-trial must be an integer in [1, 10]; got {regdb_trial!r}")
    require_dir(root / "idx", "RegDB idx", "RegDB needs idx/ list files, Visible/ and Thermal/")
    cache = ExistenceCache(root)
    splits = {
        "train": (_records(root, "train", "visible", trial, cache)
                  + _records(root, "train", "thermal", trial, cache)),
        "query": _records(root, "test", "visible", trial, cache),
        "gallery": _records(root, "test", "thermal", trial, cache),
    }
    return make_dataset(root, "regdb", splits, trial=trial, protocol="visible->thermal",
                        notes=[f"trial {trial}: query = visible test, gallery = thermal test"])


REGDB = Layout("regdb", matches, load, "idx/ list files with Visible/ and Thermal/ folders",
               options=("regdb_trial",))
