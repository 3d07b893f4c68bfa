"""COCO-17 mapping, heat-map rendering/decoding round trip, PCK."""

from __future__ import annotations

import numpy as np
import pytest

from reidcli.io.h5 import COCO17_NAMES
from reidcli.pose import coco
from reidcli.pose.heatmaps import decode_heatmaps, heatmaps_to_keypoints, render_heatmaps
from reidcli.pose.pck import pck, torso_size


def test_blazepose_to_coco_picks_same_named_landmarks():
    assert coco.BLAZEPOSE_TO_COCO == (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
    for c, b in enumerate(coco.BLAZEPOSE_TO_COCO):
        assert coco.BLAZEPOSE33_NAMES[b] == COCO17_NAMES[c]
    lm = np.arange(2 * 33 * 3, dtype=np.float32).reshape(2, 33, 3)
    out = coco.blazepose_to_coco(lm)
    assert out.shape == (2, 17, 3)
    np.testing.assert_array_equal(out[1, 5], lm[1, 11])  # left shoulder
    np.testing.assert_array_equal(out[0, 16], lm[0, 28])  # right ankle
    with pytest.raises(ValueError, match="33"):
        coco.blazepose_to_coco(np.zeros((17, 3)))


def test_flip_index_swaps_left_and_right():
    for i, j in enumerate(coco.COCO17_FLIP_INDEX):
        a, b = COCO17_NAMES[i], COCO17_NAMES[j]
        assert a.replace("left", "X").replace("right", "left").replace("X", "right") == b


def _random_keypoints(rng, n, h, w, border=0.0):
    kp = np.ones((n, 17, 3), np.float32)
    kp[..., 0] = rng.uniform(border, w - 1 - border, (n, 17))
    kp[..., 1] = rng.uniform(border, h - 1 - border, (n, 17))
    return kp


@pytest.mark.parametrize("refine,blur,tol", [("dark", 0.0, 0.01), ("dark", 1.0, 0.05),
                                             ("dark", 2.0, 0.15), ("quarter", 0.0, 0.5)])
def test_render_decode_round_trip_subpixel(refine, blur, tol):
    rng = np.random.default_rng(0)
    # 3 px from the border, so the Gaussian is not cut off (mmpose's DARK has the same limit).
    kp = _random_keypoints(rng, 8, 64, 32, border=3.0)
    heat, weight = render_heatmaps(kp, (64, 32), sigma=2.0)
    assert heat.shape == (8, 17, 64, 32) and weight.min() == 1
    assert heat.max() <= 1.0 and heat.max() > 0.9
    coords, scores = decode_heatmaps(heat, refine=refine, blur_sigma=blur)
    err = np.linalg.norm(coords - kp[..., :2], axis=-1)
    assert err.max() < tol, (refine, blur, err.max())
    assert scores.min() > 0.85
    if refine == "quarter":  # beats plain argmax on average
        base, _ = decode_heatmaps(heat, refine="none")
        assert err.mean() < np.linalg.norm(base - kp[..., :2], axis=-1).mean()


def test_image_coordinates_and_per_sample_sizes():
    rng = np.random.default_rng(1)
    sizes = np.array([[128, 64], [256, 128]])
    kp = np.concatenate([_random_keypoints(rng, 1, 128, 64, 8), _random_keypoints(rng, 1, 256, 128, 16)])
    heat, _ = render_heatmaps(kp, (64, 32), sizes, sigma=2.0)
    back = heatmaps_to_keypoints(heat, sizes, refine="dark", blur_sigma=0.0)
    assert back.shape == (2, 17, 3)
    np.testing.assert_allclose(back[..., :2], kp[..., :2], atol=0.05)


def test_low_score_and_outside_keypoints_are_masked():
    kp = np.array([[[10, 20, 0.9], [10, 20, 0.1], [500, 20, 1.0]] + [[5, 5, 0.0]] * 14], np.float32)
    heat, weight = render_heatmaps(kp, (64, 32), sigma=2.0, min_score=0.2)
    assert weight[0, :3].tolist() == [1.0, 0.0, 0.0] and weight[0, 3:].sum() == 0
    assert heat[0, 1].max() == 0 and heat[0, 2].max() == 0 and heat[0, 0].max() > 0.9
    back = heatmaps_to_keypoints(heat, None, min_score=0.0)
    assert back[0, 1, 2] == 0  # an empty map reads as missing


def test_torch_input_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    kp = _random_keypoints(rng, 3, 128, 64, border=8)
    heat_np, w_np = render_heatmaps(kp, (64, 32), (128, 64), sigma=1.5)
    heat_t, w_t = render_heatmaps(torch.from_numpy(kp), (64, 32), torch.tensor([128, 64]), sigma=1.5)
    assert isinstance(heat_t, torch.Tensor) and heat_t.dtype == torch.float32
    np.testing.assert_allclose(heat_t.numpy(), heat_np, atol=1e-6)
    np.testing.assert_array_equal(w_t.numpy(), w_np)
    coords, _ = decode_heatmaps(heat_t, refine="dark", blur_sigma=0.0, image_size=(128, 64))
    np.testing.assert_allclose(coords, kp[..., :2], atol=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        render_heatmaps(np.zeros((17, 3)), (8, 8), sigma=0)
    with pytest.raises(ValueError, match="refine"):
        decode_heatmaps(np.zeros((17, 8, 8)), refine="taylor")


def _person(n=4):
    """Upright stick people, torso diagonal sqrt(20^2 + 40^2)."""
    kp = np.zeros((n, 17, 3), np.float32)
    kp[:, :, 2] = 1
    kp[:, :, 0] = 30
    kp[:, :, 1] = np.linspace(10, 120, 17)
    kp[:, 5, :2], kp[:, 6, :2] = (40, 40), (20, 40)
    kp[:, 11, :2], kp[:, 12, :2] = (40, 80), (20, 80)
    return kp


def test_pck_counts_hits_misses_and_missing_detections():
    gt = _person()
    torso = np.hypot(20, 40)
    np.testing.assert_allclose(torso_size(gt), torso)
    assert pck(gt, gt).value == 1.0
    pred = gt.copy()
    pred[:, 0, 0] += 0.19 * torso  # inside the 0.2 radius
    pred[:, 1, 0] += 0.21 * torso  # outside
    pred[3] = 0  # no person found: all wrong
    res = pck(pred, gt)
    assert res.n_joints == 4 * 17 and res.n_images == 4
    assert res.value == pytest.approx((3 * 16) / 68)
    assert res.per_joint[0] == pytest.approx(0.75) and res.per_joint[1] == 0
    gt_hidden = gt.copy()
    gt_hidden[0, [5, 6, 11, 12], 2] = 0  # no torso: the image is skipped
    assert pck(gt, gt_hidden).n_skipped == 1
