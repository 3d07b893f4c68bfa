"""Records and datasets: what every layout parser returns.

A `Dataset` is a root folder plus named splits (``train``, ``query``, ``gallery``, ...),
each a path-sorted list of `Record`. Paths are relative to the root, POSIX style, so
they match the ``paths`` datasets of features, labels and pose files.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VISIBLE, INFRARED = 0, 1


@dataclass(frozen=True)
class Record:
    path: str  # relative to Dataset.root, POSIX separators
    pid: int  # -1 = unknown / junk; 0 may be a distractor id in Market-style sets
    camid: int  # 0-based camera index
    modality: int = VISIBLE  # 0 visible, 1 infrared


@dataclass
class Dataset:
    root: Path
    format: str
    splits: dict[str, list[Record]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Record]:
        from reidcli.utils.errors import InputError

        if name not in self.splits:
            raise InputError(f"{self.root} ({self.format}) has no '{name}' split "
                             f"(found: {', '.join(self.splits) or 'none'})")
        return self.splits[name]

    def abspath(self, rec: Record) -> Path:
        return self.root / rec.path

    def summary(self) -> str:
        """One line: what the parser found per split."""
        parts = []
        for name, recs in self.splits.items():
            pids = {r.pid for r in recs if r.pid >= 0}
            cams = {r.camid for r in recs}
            mods = {r.modality for r in recs}
            extra = f", {len(mods)} modalities" if len(mods) > 1 else ""
            parts.append(f"{name}: {_n(len(pids), 'id')}, {_n(len(recs), 'image')}, "
                         f"{_n(len(cams), 'camera')}{extra}")
        return f"{self.format} at {self.root}: " + "; ".join(parts)

    def arrays(self, name: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        recs = self.split(name)
        return ([r.path for r in recs], np.array([r.pid for r in recs], dtype=np.int64),
                np.array([r.camid for r in recs], dtype=np.int64),
                np.array([r.modality for r in recs], dtype=np.int8))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def relabel(pids: list[int]) -> tuple[np.ndarray, dict[int, int]]:
    """Map identity ids to 0..C-1 (sorted order); -1 stays -1."""
    uniq = sorted({p for p in pids if p >= 0})
    mapping = {p: i for i, p in enumerate(uniq)}
    return np.array([mapping.get(p, -1) for p in pids], dtype=np.int64), mapping


def id_counts(recs: list[Record]) -> Counter:
    return Counter(r.pid for r in recs)


def fingerprint(root: str | Path, recs: list[Record]) -> dict:
    """What a training run trains on, for ``--resume`` to compare: the dataset folder, the
    number of images and identities, and a SHA-256 of the records (relative path, identity,
    camera and modality, one line each) -- the same images and labels give the same digest
    wherever the folder lies."""
    h = hashlib.sha256()
    for r in recs:
        h.update(f"{r.path}\t{r.pid}\t{r.camid}\t{r.modality}\n".encode("utf-8", "surrogatepass"))
    return {"root": str(Path(root).resolve()), "images": len(recs), "identities": len({r.pid for r in recs if r.pid >= 0}),
            "digest": h.hexdigest()}


def describe_fingerprint(fp: dict) -> str:
    """``fp`` (`fingerprint`) in words: ``data/market (48 images, 6 identities)``."""
    n, k = fp.get("images"), fp.get("identities")
    one = lambda v: isinstance(v, int) and v == 1  # noqa: E731  (a crafted file may hold anything)
    text = f"{fp.get('root', '?')} ({n} image{'' if one(n) else 's'}, {k} identit{'y' if one(k) else 'ies'})"
    return text.replace("\r", "\\r").replace("\n", "\\n")  # one line, even for a folder name with a newline
