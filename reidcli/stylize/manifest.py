"""Reading a styled tree's ``manifest.csv`` (`reidcli.stylize.apply`) for training:
LSTM-UDA 2021 (docs/papers.md section 5) treats an image and its styled versions as one
class, so each styled image takes the (pseudo-)label of its original."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from reidcli.data.records import Record
from reidcli.utils.errors import FormatError, InputError

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("split", "pid", "original", "source_cam", "style_cam", "output")
PROVENANCE = "provenance.json"


def write_manifest(folder: str | os.PathLike, rows) -> None:
    """``<folder>/manifest.csv``: the header `MANIFEST_COLUMNS`, then one row per styled image
    (a sequence of values in that column order)."""
    with open(Path(folder) / MANIFEST, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        w.writerows(rows)


def read_manifest(styled: str | os.PathLike, *, empty_ok: bool = False,
                  fix: str = "--styled takes a folder written by 'reid stylize apply'") -> list[dict]:
    """The rows of ``<styled>/manifest.csv`` (`write_manifest`), each a dict of every column
    of `MANIFEST_COLUMNS`. A missing file is an `InputError` ending with ``fix``; a missing
    column, or no rows unless ``empty_ok`` (a shard without images), a `FormatError`."""
    path = Path(styled) / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: no such file; {fix}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    missing = [c for c in MANIFEST_COLUMNS if c not in columns]
    if missing or not (rows or empty_ok):
        raise FormatError(f"{path}: {'no column ' + missing[0] if missing else 'no rows'}; "
                          "re-create it with 'reid stylize apply'")
    return rows


def shard_of(styled: str | os.PathLike) -> Optional[tuple[int, int]]:
    """``(i, n)`` when ``styled`` is one shard of a ``reid stylize apply --shard i/n`` run
    not yet merged (the last record of its ``provenance.json`` names its ``shard``; ``reid
    merge`` leaves it out of the merged tree's), else None (also without a readable record)."""
    try:
        params = json.loads((Path(styled) / PROVENANCE).read_text())[-1]["params"]
        i, n = (int(v) for v in params["shard"])
    except (OSError, ValueError, OverflowError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return i, n


def require_whole_tree(styled: str | os.PathLike, param: str = "styled") -> None:
    """A `ParamError` (``param``) when ``styled`` is one unmerged shard of ``reid stylize apply
    --shard i/n``: it holds only part of the styled images, so training on it would silently
    leave the rest out."""
    shard = shard_of(styled)
    if shard is None:
        return
    from reidcli.utils.params import ParamError

    i, n = shard
    raise ParamError(param, f"{styled} is shard {i}/{n} of a 'reid stylize apply --shard i/n' run, not the whole "
                            f"styled tree; join the {n} shard folders first with 'reid merge SHARD... -o STYLED' "
                            "and pass that folder")


def add_styled(records: list[Record], labels: np.ndarray, root: str | os.PathLike,
               styled: str | os.PathLike) -> tuple[list[Record], np.ndarray]:
    """``records`` (relative to ``root``) and their ``labels``, followed by every styled
    version of them listed in ``styled``'s manifest, each with its original's label (paths
    absolute, camera = the style camera). Styled images of other images are ignored; an
    original missing from ``records`` in every row is an `InputError` (another dataset); an
    unmerged shard of ``reid stylize apply --shard`` is refused (`require_whole_tree`)."""
    require_whole_tree(styled)
    index = {str((Path(root) / r.path).resolve()): i for i, r in enumerate(records)}
    out_recs, out_y, base = list(records), list(np.asarray(labels).tolist()), Path(styled).resolve()
    for row in read_manifest(styled):
        i = index.get(str(Path(row["original"]).resolve()))
        if i is None:
            continue
        out_recs.append(Record(str(base / row["output"]), -1, int(row["style_cam"]) - 1, records[i].modality))
        out_y.append(out_y[i])
    if len(out_recs) == len(records):
        raise InputError(f"{Path(styled) / MANIFEST} lists no image of {root}'s training split; "
                         "--styled must be 'reid stylize apply' output for this target")
    return out_recs, np.asarray(out_y, dtype=np.int64)
