"""The mediapipe (BlazePose) backend on a real photograph and on images without a person.

The photograph is Grace Hopper's portrait shipped inside matplotlib (a dependency of
reidcli), head and shoulders: the face keypoints must land on her face and the shoulders
below it, on the correct sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _photo() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def backend():
    from reidcli.pose.backends import get_backend
    from reidcli.utils.errors import ConfigError

    try:
        be = get_backend("mediapipe")
    except ConfigError as exc:
        pytest.skip(f"mediapipe backend unavailable: {exc}")
    yield be
    be.close()


def test_keypoints_land_on_the_person(backend):
    from reidcli.data.images import read_image

    img = read_image(_photo())  # 600 x 512 RGB; face roughly x 180-340, y 120-300
    kp = backend.predict([img], ["grace_hopper.jpg"])[0]
    nose, leye, reye, lsho, rsho = kp[0], kp[1], kp[2], kp[5], kp[6]
    assert min(nose[2], leye[2], reye[2], lsho[2], rsho[2]) > 0.5
    assert 180 < nose[0] < 340 and 150 < nose[1] < 300
    assert leye[1] < nose[1] and reye[1] < nose[1]  # eyes above the nose
    assert leye[0] > reye[0]  # she faces the camera: her left is the image's right
    assert lsho[1] > nose[1] + 80 and rsho[1] > nose[1] + 80
    assert lsho[0] > nose[0] > rsho[0]


def test_small_reid_crop_is_upscaled_and_mapped_back(backend):
    import cv2

    from reidcli.data.images import read_image

    big = read_image(_photo())
    crop = cv2.resize(big, (64, 75), interpolation=cv2.INTER_AREA)  # a re-ID-sized image
    kp_small = backend.predict([crop], ["c"])[0]
    kp_big = backend.predict([big], ["b"])[0]
    scale = np.array([64 / big.shape[1], 75 / big.shape[0]])
    face = [0, 1, 2, 5, 6]
    assert (kp_small[face, 2] > 0.5).all()
    # the same keypoints, in the crop's own pixels, within a few crop pixels
    assert np.abs(kp_small[face, :2] - kp_big[face, :2] * scale).max() < 6


def test_no_person_gives_zeros(backend):
    rng = np.random.default_rng(0)
    imgs = [np.zeros((128, 64, 3), np.uint8), rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)]
    kp = backend.predict(imgs, ["black", "noise"])
    assert kp.shape == (2, 17, 3)
    assert not kp.any()
