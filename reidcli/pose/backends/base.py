"""The backend interface, its registry, and the crop geometry backends share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from reidcli.utils.registry import Registry

BACKENDS: Registry = Registry("pose backend")


class PoseBackend:
    """Turns RGB uint8 images into COCO-17 keypoints in each image's own pixels.

    Subclasses set `name` and `model` (stored in the pose file's attributes) and implement
    `predict`. An image with no person gets an all-zero [17, 3] row (score 0), never an error.
    """

    name = "base"
    model = ""
    needs_images = True  # False: predict() looks only at the paths (ground truth)

    def predict(self, images: Sequence[np.ndarray], paths: Sequence[str]) -> np.ndarray:
        """[B, 17, 3] float32 (x, y, score) for B images (RGB, HxWx3 uint8)."""
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """Attributes written into the pose file (backend name, model, options)."""
        return {"backend": self.name, "model": self.model}

    def close(self) -> None:
        """Release native resources (graphs, sessions)."""

    def __enter__(self) -> "PoseBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Placement:
    """Where an image was pasted on a canvas: canvas_xy = image_xy * scale + offset."""

    scale: float
    ox: float
    oy: float

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - self.ox) / self.scale
        out[..., 1] = (out[..., 1] - self.oy) / self.scale
        return out


def letterbox(img: np.ndarray, size: Sequence[int], margin: float = 0.0,
              fill: int = 0) -> tuple[np.ndarray, Placement]:
    """Resize ``img`` (aspect kept) into the centre of an (H, W) canvas.

    ``margin`` is the fraction of the canvas left free on each side, so a tight re-ID crop
    (128x64) is seen by detectors that expect some context around the person.
    """
    import cv2

    H, W = int(size[0]), int(size[1])
    h, w = img.shape[:2]
    scale = min(H * (1 - 2 * margin) / h, W * (1 - 2 * margin) / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    resized = cv2.resize(img, (nw, nh), interpolation=interp)
    canvas = np.full((H, W, img.shape[2]), fill, dtype=img.dtype)
    oy, ox = (H - nh) // 2, (W - nw) // 2
    canvas[oy:oy + nh, ox:ox + nw] = resized
    # Use the realised scale per axis' mean so the inverse maps the pasted pixels exactly.
    return canvas, Placement(scale=0.5 * (nw / w + nh / h), ox=float(ox), oy=float(oy))


def zeros(n: int) -> np.ndarray:
    return np.zeros((n, 17, 3), dtype=np.float32)
