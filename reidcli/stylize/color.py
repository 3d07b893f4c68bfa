"""Training-free camera-style transfer by colour statistics (``reid stylize fit --method color``).

Per camera, in CIE L*a*b* (a perceptual colour space; Reinhard et al., "Color Transfer
between Images", IEEE CG&A 2001, use the related l-alpha-beta space), we keep a pixel
sample, its mean and covariance and the quantiles of L (the camera's tone curve).
Transferring camera S's image to camera T's style:

1. tone curve: ``L' = Q_T(F_S(L))``, histogram (quantile) matching of lightness, with
   ``F_S`` the CDF of S's lightness and ``Q_T`` the quantile function of T's;
2. colour moments: ``x' = mu_T + A (x - mu'_S)`` with the Monge-Kantorovich linear map
   ``A = S'^-1/2 (S'^1/2 Sigma_T S'^1/2)^1/2 S'^-1/2`` (Pitie & Kokaram, "The linear
   Monge-Kantorovitch linear colour mapping for example-based colour transfer", CVMP
   2007), where ``mu'_S`` and ``S' = Sigma'_S`` are the moments of S's sample *after*
   step 1, so that S's pixels land exactly on T's mean and covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_QUANTILES = 257
L_RANGE = (0.0, 100.0)
LUT_STEPS = 64  # tone-curve table entries per unit of L


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> float32 L*a*b* (L in 0..100, D65), via OpenCV."""
    import cv2

    x = np.ascontiguousarray(img, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(x, cv2.COLOR_RGB2Lab).reshape(img.shape)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float L*a*b* -> (..., 3) uint8 RGB, clipped to the sRGB gamut."""
    import cv2

    x = np.ascontiguousarray(lab, dtype=np.float32).reshape(-1, 1, 3)
    rgb = cv2.cvtColor(x, cv2.COLOR_Lab2RGB).reshape(lab.shape)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


@dataclass
class CameraStats:
    """One camera's colour statistics: a Lab pixel sample (N, 3), its mean, covariance
    and lightness quantiles."""

    sample: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    quantiles: np.ndarray

    @classmethod
    def from_pixels(cls, lab: np.ndarray) -> "CameraStats":
        lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
        levels = np.linspace(0.0, 1.0, N_QUANTILES)
        return cls(sample=lab.astype(np.float32), mean=lab.mean(0), cov=np.cov(lab, rowvar=False, bias=True),
                   quantiles=np.quantile(lab[:, 0], levels))


def _sqrtm(m: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Square root (or its inverse) of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    w = np.clip(w, 1e-6, None)
    return (v * (w ** (-0.5 if inverse else 0.5))) @ v.T


def tone_curve(lightness: np.ndarray, src: CameraStats, dst: CameraStats) -> np.ndarray:
    """Step 1: map lightness through S's CDF and T's quantile function."""
    qs = np.maximum.accumulate(src.quantiles)  # np.interp needs increasing abscissae
    return np.interp(lightness, qs, dst.quantiles)


@dataclass
class PairTransform:
    """The S -> T transfer of the module docstring, precomputed for one camera pair."""

    src: CameraStats
    dst: CameraStats
    matrix: np.ndarray
    shift: np.ndarray
    # the tone curve sampled every 1/LUT_STEPS of L (the fast path of `image`)
    lut: np.ndarray = None  # type: ignore[assignment]

    @classmethod
    def between(cls, src: CameraStats, dst: CameraStats) -> "PairTransform":
        toned = src.sample.astype(np.float64).copy()
        toned[:, 0] = tone_curve(toned[:, 0], src, dst)
        mu = toned.mean(0)
        cov = np.cov(toned, rowvar=False, bias=True)
        root = _sqrtm(cov)
        inv_root = _sqrtm(cov, inverse=True)
        a = inv_root @ _sqrtm(root @ dst.cov @ root) @ inv_root
        grid = np.linspace(*L_RANGE, int(L_RANGE[1] - L_RANGE[0]) * LUT_STEPS + 1)
        lut = tone_curve(grid, src, dst).astype(np.float32)
        return cls(src, dst, a, dst.mean - a @ mu, np.append(lut, lut[-1]))

    def lab(self, lab: np.ndarray) -> np.ndarray:
        """Transfer Lab pixels (..., 3) (float, unclipped)."""
        x = np.asarray(lab, dtype=np.float64).reshape(-1, 3).copy()
        x[:, 0] = tone_curve(x[:, 0], self.src, self.dst)
        return (x @ self.matrix.T + self.shift).reshape(np.shape(lab))

    def image(self, img: np.ndarray) -> np.ndarray:
        """Transfer an (H, W, 3) uint8 RGB image; returns uint8 RGB. The same map as `lab`
        in float32, with the tone curve read from its table by linear interpolation (within
        a 1/LUT_STEPS cell of L the curve is linear unless a quantile falls inside it)."""
        import cv2

        lab = rgb_to_lab(img)
        pos = np.clip(lab[..., 0] - L_RANGE[0], 0, L_RANGE[1] - L_RANGE[0]) * LUT_STEPS
        i = pos.astype(np.int32)
        frac = pos - i
        lab[..., 0] = self.lut[i] + frac * (self.lut[i + 1] - self.lut[i])
        affine = np.hstack([self.matrix, self.shift[:, None]]).astype(np.float32)
        return lab_to_rgb(cv2.transform(lab, affine))
