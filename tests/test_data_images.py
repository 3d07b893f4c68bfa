"""Image decoding: RGB order, unicode paths, header sizes, and every bad-file refusal."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_jpeg
from reidcli.data.images import check_images, image_problem, image_size, read_image
from reidcli.utils.errors import InputError


def _write(path: Path, img_bgr: np.ndarray, ext: str) -> Path:
    ok, buf = cv2.imencode(ext, img_bgr)
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    return path


def test_read_image_is_rgb_uint8(tmp_path):
    bgr = np.zeros((5, 3, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's BGR
    img = read_image(_write(tmp_path / "blue.png", bgr, ".png"))
    assert img.shape == (5, 3, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [0, 0, 255]


def test_read_image_grey_and_unicode_path(tmp_path):
    grey = np.full((4, 6), 77, np.uint8)
    img = read_image(_write(tmp_path / "行人" / "ñ.png", grey, ".png"))
    assert img.shape == (4, 6, 3) and (img == 77).all()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_image_size_from_header(tmp_path, ext):
    p = _write(tmp_path / f"x{ext}", np.zeros((37, 19, 3), np.uint8), ext)
    assert image_size(p) == (37, 19)


def test_image_size_progressive_jpeg_and_fallback(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (21, 13, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    (tmp_path / "p.jpg").write_bytes(buf.tobytes())
    assert image_size(tmp_path / "p.jpg") == (21, 13)
    p = _write(tmp_path / "x.tiff", img, ".tiff")  # no header parser: decoded instead
    assert image_size(p) == (21, 13)


def test_bad_images_are_refused_with_their_name(tmp_path):
    with pytest.raises(InputError, match=r"missing\.jpg: no such image file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"zero\.jpg: zero-byte image"):
        read_image(tmp_path / "zero.jpg")
    with pytest.raises(InputError, match=r"zero\.jpg: zero-byte image"):
        image_size(tmp_path / "zero.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image at all")
    with pytest.raises(InputError, match=r"junk\.jpg: not a decodable image"):
        read_image(tmp_path / "junk.jpg")
    with pytest.raises(InputError, match=r"junk\.jpg: not a decodable image"):
        image_size(tmp_path / "junk.jpg")
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(InputError, match=r"dir\.jpg: cannot read image"):
        read_image(tmp_path / "dir.jpg")


def test_check_images_finds_every_bad_file(tmp_path):
    good = [write_jpeg(tmp_path / f"g{i}.jpg", 32, 16, seed=i) for i in range(3)]
    data = good[0].read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    bad = [tmp_path / n for n in ("trunc.jpg", "zero.jpg", "junk.png", "gone.jpg")]
    assert check_images(good + bad) == bad
    # OpenCV >= 4.x refuses most truncated JPEGs itself; the end-of-image check catches the rest
    assert "trunc.jpg: " in image_problem(tmp_path / "trunc.jpg")
    assert image_problem(good[1]) is None
    # header-only checking is cheaper and still catches empty, missing and garbage files
    assert check_images(good + bad, decode=False) == bad[1:]
