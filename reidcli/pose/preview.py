"""Skeletons drawn on a grid of sample images (``reid extract-pose --preview out.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reidcli.pose.coco import COCO17_SKELETON, limb_sides

# RGB: left limbs green, right limbs orange, centre blue (the mmpose palette's convention).
_COLOURS = {"left": (0, 220, 0), "right": (255, 128, 0), "center": (51, 153, 255)}


def draw_skeleton(img: np.ndarray, keypoints: np.ndarray, min_score: float = 0.3,
                  thickness: int = 2) -> np.ndarray:
    """A copy of RGB ``img`` with limbs and joints whose scores exceed ``min_score``."""
    import cv2

    out = np.ascontiguousarray(img.copy())
    kp = np.asarray(keypoints, dtype=np.float32)
    shown = kp[:, 2] > min_score
    for (a, b), side in zip(COCO17_SKELETON, limb_sides()):
        if shown[a] and shown[b]:
            pa = (int(round(kp[a, 0])), int(round(kp[a, 1])))
            pb = (int(round(kp[b, 0])), int(round(kp[b, 1])))
            cv2.line(out, pa, pb, _COLOURS[side], thickness, cv2.LINE_AA)
    for j in np.flatnonzero(shown):
        cv2.circle(out, (int(round(kp[j, 0])), int(round(kp[j, 1]))), thickness + 1,
                   (255, 0, 0), -1, cv2.LINE_AA)
    return out


def _cell(img: np.ndarray, kp: np.ndarray, height: int, min_score: float) -> np.ndarray:
    import cv2

    s = height / img.shape[0]
    width = max(1, round(img.shape[1] * s))
    big = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC if s > 1 else cv2.INTER_AREA)
    scaled = kp.copy()
    scaled[:, :2] *= (width / img.shape[1], s)
    drawn = draw_skeleton(big, scaled, min_score, thickness=max(1, height // 128))
    if not (kp[:, 2] > 0).any():  # no person found: a red frame says so
        cv2.rectangle(drawn, (0, 0), (width - 1, height - 1), (255, 0, 0), 2)
    return drawn


def preview_grid(images: Sequence[np.ndarray], keypoints: np.ndarray, *, cell_height: int = 256,
                 cols: int = 8, min_score: float = 0.3, titles: Optional[Sequence[str]] = None) -> np.ndarray:
    """One RGB image: a grid of ``images`` scaled to ``cell_height`` with skeletons drawn."""
    import cv2

    if len(images) == 0:
        raise ValueError("preview_grid needs at least one image")
    cells = [_cell(im, kp, cell_height, min_score) for im, kp in zip(images, keypoints)]
    if titles:
        for c, t in zip(cells, titles):
            cv2.putText(c, str(t)[:18], (3, cell_height - 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35 * cell_height / 256, (255, 255, 255), 1, cv2.LINE_AA)
    cw = max(c.shape[1] for c in cells)
    cols = max(1, min(cols, len(cells)))
    rows = -(-len(cells) // cols)
    grid = np.full((rows * cell_height, cols * cw, 3), 32, np.uint8)
    for i, c in enumerate(cells):
        r, k = divmod(i, cols)
        grid[r * cell_height:(r + 1) * cell_height, k * cw:k * cw + c.shape[1]] = c
    return grid


def sample_indices(n: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)`` (deterministic)."""
    return np.unique(np.linspace(0, n - 1, num=min(k, n)).round().astype(int)) if n else np.zeros(0, int)


def preview_png(root, paths: Sequence[str], keypoints: np.ndarray, *, n: int = 32,
                cell_height: int = 256, cols: int = 8, min_score: float = 0.3) -> bytes:
    """The PNG bytes of a grid of ``n`` images of ``root`` spread over ``paths`` with their skeletons."""
    import cv2

    from reidcli.data.images import read_image
    from reidcli.utils.errors import InputError

    idx = sample_indices(len(paths), n)
    images = [read_image(Path(root) / paths[i]) for i in idx]
    grid = preview_grid(images, np.asarray(keypoints)[idx], cell_height=cell_height, cols=cols,
                        min_score=min_score, titles=[Path(paths[i]).name for i in idx])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError("could not encode the preview picture")
    return buf.tobytes()


def write_preview(out, root, paths: Sequence[str], keypoints: np.ndarray, **kwargs) -> Path:
    """Write `preview_png` (same keyword arguments) to ``out`` atomically."""
    from reidcli.io.atomic import atomic_write_bytes

    return atomic_write_bytes(out, preview_png(root, paths, keypoints, **kwargs))
