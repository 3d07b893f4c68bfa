"""Names of styled images: DATA's own layout and naming with the *style* camera, so the
layout parser reads the styled tree back with the same ids and the target camera.

Supported: the ``<pid>_c<cam>...`` layouts (market1501, dukemtmc, cuhk03). A name that
would collide (two source cameras mapping the same frame onto one camera) gets its last
number bumped until it is unique, as ``reid synth`` does.
"""

from __future__ import annotations

import re

from reidcli.utils.errors import InputError

BBOX_FORMATS = ("market1501", "dukemtmc", "cuhk03")
_CAM = re.compile(r"^(-1|\d+)_c\d+")
_LAST_NUMBER = re.compile(r"(\d+)(\D*)$")


def check_format(fmt: str, root) -> None:
    if fmt not in BBOX_FORMATS:
        raise InputError(f"{root} is a {fmt} dataset; 'reid stylize apply' writes the "
                         f"{', '.join(BBOX_FORMATS)} layouts; convert it or pass one of those")


class Namer:
    """``name(rel, cam)``: the styled image's relative path for 0-based camera ``cam``."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def name(self, rel: str, cam: int) -> str:
        folder, _, base = rel.rpartition("/")
        stem, _, ext = base.rpartition(".")
        new = _CAM.sub(lambda m: f"{m[1]}_c{cam + 1}", stem, count=1)
        out = f"{folder}/{new}.{ext}" if folder else f"{new}.{ext}"
        while out in self.used:
            new = _LAST_NUMBER.sub(lambda m: f"{int(m[1]) + 1:0{len(m[1])}d}{m[2]}", new, count=1)
            out = f"{folder}/{new}.{ext}" if folder else f"{new}.{ext}"
        self.used.add(out)
        return out
