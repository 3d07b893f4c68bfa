"""Atomic writes: write to a temporary sibling, then ``os.replace`` onto the target.

A crash, Ctrl-C or exception midway leaves the previous file (if any) untouched and
no half-written file behind, so ``make`` never mistakes a partial output for a result.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from reidcli.utils.errors import InputError


def temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` only on success."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give a file name for the output")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """``sha256:<hex>`` of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or (pb.exists() and pa.exists() and os.path.samefile(pa, pb))
    except OSError:
        return False
