"""Gaussian keypoint heat-maps: rendering targets and decoding predictions.

Shared by the top-down ONNX backend (decoding mmpose heat-maps) and RBNet (MSE targets
rendered from pose.h5; Yu & Piao 2024). Coordinate convention, as in mmpose's
MSRAHeatmap: a point (x, y) in an image of size (h, w) sits at (x * W / w, y * H / h) on an
(H, W) heat-map, and decoding maps back with the inverse scale.

References:
    Tompson et al. 2014, "Joint Training of a CNN and a Graphical Model for Human Pose
    Estimation" (Gaussian heat-map targets); Xiao et al. 2018, "Simple Baselines for Human
    Pose Estimation and Tracking" (argmax + quarter offset towards the higher neighbour);
    Zhang et al. 2020, "Distribution-Aware Coordinate Representation for Human Pose
    Estimation" (DARK: modulate with a Gaussian blur, then a second-order Taylor step on the
    log heat-map, Eq. 5-7); Huang et al. 2020, "The Devil is in the Details: Delving into
    Unbiased Data Processing" (unquantised sub-pixel Gaussian centres).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

Array = Union[np.ndarray, "torch.Tensor"]  # noqa: F821
REFINES = ("dark", "quarter", "none")


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _sizes(image_size, batch_shape: tuple[int, ...], xp, like) -> tuple:
    """(h, w) per sample, broadcastable against [..., K] keypoint coordinates."""
    if image_size is None:
        return None
    size = xp.as_tensor(image_size, dtype=like.dtype, device=like.device) if xp.__name__ == "torch" \
        else np.asarray(image_size, dtype=like.dtype)
    if size.ndim == 1:
        return size[0], size[1]
    size = size.reshape(*batch_shape, 2)
    return size[..., 0:1], size[..., 1:2]


def render_heatmaps(keypoints: Array, heatmap_size: Sequence[int], image_size=None, *,
                    sigma: float = 2.0, min_score: float = 0.0) -> tuple[Array, Array]:
    """Render one unnormalised Gaussian (peak 1) per keypoint.

    Args:
        keypoints: [..., K, 3] (x, y, score), numpy or torch (the result follows the input).
        heatmap_size: (H, W) of the output maps.
        image_size: (h, w) of the image the coordinates are in, one pair or one per sample
            ([..., 2]); None when the coordinates are already heat-map pixels.
        sigma: Gaussian standard deviation in heat-map pixels.
        min_score: keypoints with score <= min_score are masked (map of zeros, weight 0).

    Returns:
        heatmaps [..., K, H, W] float32 and target weights [..., K] (1 = supervise, 0 = masked:
        low score, or the Gaussian lies wholly outside the map beyond 3 sigma).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be a float > 0; got {sigma}")
    torch_in = _is_torch(keypoints)
    if torch_in:
        import torch as xp

        kp = keypoints.to(xp.float32)
        grid = lambda n: xp.arange(n, dtype=xp.float32, device=kp.device)  # noqa: E731
    else:
        xp = np
        kp = np.asarray(keypoints, dtype=np.float32)
        grid = lambda n: np.arange(n, dtype=np.float32)  # noqa: E731
    if kp.ndim < 2 or kp.shape[-1] < 3:
        raise ValueError(f"keypoints must be [..., K, 3]; got {tuple(kp.shape)}")
    H, W = int(heatmap_size[0]), int(heatmap_size[1])
    x, y, score = kp[..., 0], kp[..., 1], kp[..., 2]
    sizes = _sizes(image_size, tuple(kp.shape[:-2]), xp, kp)
    if sizes is not None:
        x, y = x * (W / sizes[1]), y * (H / sizes[0])
    r = 3.0 * sigma
    inside = (x > -r) & (x < W - 1 + r) & (y > -r) & (y < H - 1 + r)
    weight = ((score > min_score) & inside)
    weight = weight.to(xp.float32) if torch_in else weight.astype(np.float32)
    gx = xp.exp(-((grid(W) - x[..., None]) ** 2) / (2 * sigma**2))  # [..., K, W]
    gy = xp.exp(-((grid(H) - y[..., None]) ** 2) / (2 * sigma**2))  # [..., K, H]
    heat = gy[..., :, None] * gx[..., None, :] * weight[..., None, None]
    return heat, weight


def _to_numpy(a) -> np.ndarray:
    if _is_torch(a):
        return a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float32)


def _argmax(heat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer (x, y) of each map's maximum and the maximum, over [M, H, W]."""
    M, H, W = heat.shape
    flat = heat.reshape(M, -1)
    idx = flat.argmax(axis=1)
    vals = flat[np.arange(M), idx]
    return (idx % W).astype(np.int64), (idx // W).astype(np.int64), vals


def _quarter(heat: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    M, H, W = heat.shape
    m = np.arange(M)
    coords = np.stack([px, py], axis=1).astype(np.float32)
    okx = (px > 0) & (px < W - 1)
    oky = (py > 0) & (py < H - 1)
    dx = np.where(okx, heat[m, py, np.minimum(px + 1, W - 1)] - heat[m, py, np.maximum(px - 1, 0)], 0)
    dy = np.where(oky, heat[m, np.minimum(py + 1, H - 1), px] - heat[m, np.maximum(py - 1, 0), px], 0)
    coords[:, 0] += 0.25 * np.sign(dx)
    coords[:, 1] += 0.25 * np.sign(dy)
    return coords


def _dark(heat: np.ndarray, px: np.ndarray, py: np.ndarray, blur_sigma: float) -> np.ndarray:
    """DARK (Zhang et al. 2020): Gaussian modulation, then x* = m - H^-1 grad on log(heat)."""
    from scipy.ndimage import gaussian_filter

    M, H, W = heat.shape
    peak = heat.reshape(M, -1).max(axis=1)
    if blur_sigma > 0:  # Eq. 8: modulate, then rescale so each map keeps its maximum
        blurred = gaussian_filter(heat, sigma=(0, blur_sigma, blur_sigma), mode="constant", truncate=2.5)
        bmax = blurred.reshape(M, -1).max(axis=1)
        heat = blurred * (peak / np.maximum(bmax, 1e-12))[:, None, None]
    logh = np.log(np.maximum(heat, 1e-10))
    pad = np.pad(logh, ((0, 0), (1, 1), (1, 1)), mode="edge")
    m, cx, cy = np.arange(M), px + 1, py + 1
    c = pad[m, cy, cx]
    dx = 0.5 * (pad[m, cy, cx + 1] - pad[m, cy, cx - 1])
    dy = 0.5 * (pad[m, cy + 1, cx] - pad[m, cy - 1, cx])
    dxx = pad[m, cy, cx + 1] - 2 * c + pad[m, cy, cx - 1]
    dyy = pad[m, cy + 1, cx] - 2 * c + pad[m, cy - 1, cx]
    dxy = 0.25 * (pad[m, cy + 1, cx + 1] - pad[m, cy + 1, cx - 1]
                  - pad[m, cy - 1, cx + 1] + pad[m, cy - 1, cx - 1])
    det = dxx * dyy - dxy**2
    # Only step where the log-map is locally concave (a genuine peak) and off the border.
    ok = (det > 1e-12) & (dxx < 0) & (px > 0) & (px < W - 1) & (py > 0) & (py < H - 1) & (peak > 0)
    safe = np.where(ok, det, 1.0)
    ox = np.where(ok, -(dyy * dx - dxy * dy) / safe, 0.0)
    oy = np.where(ok, -(dxx * dy - dxy * dx) / safe, 0.0)
    # A step longer than one pixel means the quadratic model is wrong there: clip it.
    coords = np.stack([px + np.clip(ox, -1, 1), py + np.clip(oy, -1, 1)], axis=1)
    return coords.astype(np.float32)


def decode_heatmaps(heatmaps: Array, *, refine: str = "dark", blur_sigma: float = 2.0,
                    image_size=None) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint coordinates and scores from heat-maps.

    Args:
        heatmaps: [..., K, H, W], numpy or torch.
        refine: "dark" (Taylor expansion on the log map), "quarter" (0.25 px towards the
            higher neighbour) or "none" (integer argmax).
        blur_sigma: DARK modulation blur in heat-map pixels (about the training sigma);
            0 disables the blur (exact for noiseless Gaussians).
        image_size: (h, w) or [..., 2] to return image pixels instead of heat-map pixels.

    Returns:
        coords [..., K, 2] (x, y) float32 and scores [..., K] (each map's maximum).
    """
    if refine not in REFINES:
        raise ValueError(f"refine must be one of {', '.join(REFINES)}; got {refine!r}")
    heat = _to_numpy(heatmaps)
    if heat.ndim < 3:
        raise ValueError(f"heatmaps must be [..., K, H, W]; got {heat.shape}")
    lead, (H, W) = heat.shape[:-2], heat.shape[-2:]
    flat = heat.reshape(-1, H, W)
    px, py, vals = _argmax(flat)
    if refine == "dark":
        coords = _dark(flat, px, py, blur_sigma)
    elif refine == "quarter":
        coords = _quarter(flat, px, py)
    else:
        coords = np.stack([px, py], axis=1).astype(np.float32)
    coords = coords.reshape(*lead, 2)
    if image_size is not None:
        coords = scale_coords(coords, (H, W), image_size)
    return coords, np.maximum(vals, 0).reshape(lead).astype(np.float32)


def scale_coords(coords: np.ndarray, from_size: Sequence[int], to_size) -> np.ndarray:
    """Map (x, y) from an (H, W) frame to (h, w) frame(s) by the heat-map scale convention."""
    to = np.asarray(to_size, dtype=np.float32)
    if to.ndim == 1:
        h, w = to[0], to[1]
    else:
        to = to.reshape(*coords.shape[:-2], 1, 2)
        h, w = to[..., 0], to[..., 1]
    out = np.array(coords, dtype=np.float32, copy=True)
    out[..., 0] = out[..., 0] * (w / float(from_size[1]))
    out[..., 1] = out[..., 1] * (h / float(from_size[0]))
    return out


def heatmaps_to_keypoints(heatmaps: Array, image_size, *, refine: str = "dark",
                          blur_sigma: float = 2.0, min_score: Optional[float] = None) -> np.ndarray:
    """[..., K, H, W] heat-maps -> [..., K, 3] keypoints (x, y, score) in image pixels.

    Scores at or below ``min_score`` (when given) are zeroed, so they read as missing.
    """
    coords, scores = decode_heatmaps(heatmaps, refine=refine, blur_sigma=blur_sigma,
                                     image_size=image_size)
    if min_score is not None:
        scores = np.where(scores > min_score, scores, 0.0).astype(np.float32)
    return np.concatenate([coords, scores[..., None]], axis=-1)
