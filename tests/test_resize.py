"""One resize for training and extraction (issue 22): the training head, the inference
transform and the array helper give the same pixels, and the resize is PIL's antialiased
bilinear (the named contract of `reid export`)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reidcli.data.transforms import AugmentConfig, ResizeUint8, build_train_transform, resize_array


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(128, 64), (100, 37), (40, 20), (64, 32)])
def test_training_and_inference_see_the_same_pixels(shape):
    img = _image(*shape)
    head, _ = build_train_transform(AugmentConfig(height=64, width=32)).split()
    trained = head(img).numpy()
    extracted = ResizeUint8(64, 32)(img).numpy()
    assert trained.dtype == np.uint8 and trained.shape == (3, 64, 32)
    np.testing.assert_array_equal(trained, extracted)
    np.testing.assert_array_equal(resize_array(img, 64, 32), extracted.transpose(1, 2, 0))


@pytest.mark.parametrize("shape", [(128, 64), (100, 37), (32, 16)])
def test_the_resize_is_pils_antialiased_bilinear(shape):
    img = _image(*shape, seed=1)
    ours = resize_array(img, 64, 32).astype(int)
    pil = np.asarray(Image.fromarray(img).resize((32, 64), Image.BILINEAR)).astype(int)
    assert np.abs(ours - pil).max() <= 1  # uint8 rounding only


def test_shrinking_averages_instead_of_aliasing():
    stripes = np.zeros((96, 48, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel columns: a 3x shrink without antialiasing (OpenCV's
    # INTER_LINEAR) samples single columns and keeps 0 or 255; antialiasing averages them
    out = resize_array(stripes, 32, 16).astype(int)
    assert np.abs(out[:, 1:-1] - 127.5).max() < 20


def test_same_size_is_the_identity():
    img = _image(64, 32)
    assert resize_array(img, 64, 32) is img
