"""Image decoding: the one place that reads image files.

`read_image` decodes with OpenCV from a byte buffer (``cv2.imdecode(np.fromfile(...))``)
so non-ASCII paths work on every platform, and returns (H, W, 3) uint8 RGB. A missing,
zero-byte or undecodable file raises `InputError` naming it. `image_size` reads only the
header of JPEG, PNG, BMP and GIF files. `check_images` finds the bad files of a dataset
before a long run rather than during it.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from reidcli.utils.errors import InputError

log = logging.getLogger(__name__)

_FIX = "replace or delete it and rerun"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...), not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _read_bytes(path: Path) -> np.ndarray:
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file; check the dataset folder") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc.strerror or exc}); check permissions") from None
    if buf.size == 0:
        raise InputError(f"{path}: zero-byte image; {_FIX}")
    return buf


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 RGB array (grey, 16-bit and alpha images are
    converted). Raises `InputError` for a missing, empty or undecodable file."""
    import cv2

    p = Path(path)
    try:
        img = cv2.imdecode(_read_bytes(p), cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None:
        raise InputError(f"{p}: not a decodable image (corrupt or unsupported format); {_FIX}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _jpeg_size(f) -> Optional[tuple[int, int]]:
    f.seek(2)
    while True:
        b = f.read(1)
        while b == b"\xff":  # fill bytes before the marker code
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue  # stand-alone markers carry no length
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if marker in _SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return (h, w) if h and w else None
        if marker == 0xD9 or length < 2:
            return None
        f.seek(length - 2, 1)
        b = f.read(1)
        if b != b"\xff":
            return None
        f.seek(-1, 1)


def _header_size(path: Path) -> Optional[tuple[int, int]]:
    """(h, w) from the file header, or None when the format is not parsed here."""
    with open(path, "rb") as f:
        head = f.read(26)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return h, w
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(f)
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(h), w
        if head[:4] == b"GIF8" and len(head) >= 10:
            w, h = struct.unpack("<HH", head[6:10])
            return h, w
    return None


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, from its header when possible, else by decoding it."""
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise InputError(f"{p}: zero-byte image; {_FIX}")
        size = _header_size(p)
    except FileNotFoundError:
        raise InputError(f"{p}: no such image file; check the dataset folder") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read image ({exc.strerror or exc}); check permissions") from None
    if size is not None and size[0] > 0 and size[1] > 0:
        return size
    h, w = read_image(p).shape[:2]
    return h, w


def image_problem(path: str | Path, decode: bool = True) -> Optional[str]:
    """Why ``path`` is not a usable image (one line), or None when it is.

    With ``decode`` the image is fully decoded and a JPEG must end with its EOI marker
    (OpenCV decodes a truncated JPEG with a grey bottom and only a warning); without it
    only the header is read.
    """
    try:
        if not decode:
            image_size(path)
            return None
        read_image(path)
    except InputError as exc:
        return str(exc)
    p = Path(path)
    with open(p, "rb") as f:
        is_jpeg = f.read(2) == b"\xff\xd8"
        if is_jpeg:
            f.seek(max(0, p.stat().st_size - 4096))
            if b"\xff\xd9" not in f.read():
                return f"{p}: truncated JPEG (no end-of-image marker); {_FIX}"
    return None


def check_images(paths: Iterable[str | Path], decode: bool = True) -> list[Path]:
    """The paths among ``paths`` that are missing, empty, undecodable or truncated.

    Args:
        paths: image files.
        decode: decode every image (thorough); False reads only the headers (fast).
    """
    from reidcli.utils.progress import track

    paths = [Path(p) for p in paths]
    bad = []
    for p in track(paths, "checking images", total=len(paths)):
        problem = image_problem(p, decode=decode)
        if problem is not None:
            log.debug(problem)
            bad.append(p)
    if bad:
        log.warning("%d of %d images are unusable, e.g. %s", len(bad), len(paths),
                    image_problem(bad[0], decode=decode))
    return bad
