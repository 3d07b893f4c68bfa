"""Camera styles: what each camera does to the light before the JPEG reaches the disk.

Every camera has its own illumination (gain, gamma, contrast), white balance (a colour
cast as per-channel log gains), saturation, sensor noise, optics blur, resolution (the
image is down-scaled and up-scaled back, as a low-resolution camera or a far person),
vignetting and JPEG quality; infrared cameras record grey near-infrared with an active
illuminator (strong vignette, more noise), thermal ones (``Preset.thermal``) grey emitted
heat at a low resolution (a soft, blurred image with little noise). Styles are drawn per camera from the domain's
`CameraRanges`, so the cameras of a domain differ from one another and the domains
differ as a whole (the camera-style gap that CamStyle and SPGAN address).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from reidcli.data.synth.presets import Preset

# MSMT17-style times of day: (gain, RGB log-cast)
TIME_OF_DAY = {"morning": (0.9, (0.04, 0.02, -0.02)), "noon": (1.12, (0.0, 0.0, 0.02)),
               "afternoon": (0.72, (0.12, 0.03, -0.12))}


@dataclass
class CameraStyle:
    cam: int  # 0-based
    infrared: bool
    indoor: bool
    snow: bool
    gain: float
    gamma: float
    contrast: float
    saturation: float
    cast: tuple[float, float, float]
    noise: float
    blur: float
    resolution: float
    jpeg: int
    vignette: float
    light: float  # key light direction in the image, -1 (left) .. 1 (right)
    heading: float  # main walking direction of people in this camera (yaw, rad)
    thermal: bool = False  # far-infrared: the image is emitted heat (`Identity.thermal`)

    def as_dict(self) -> dict:
        return asdict(self)


def sample_camera(preset: Preset, cam: int, rng: np.random.Generator, shift: float = 1.0) -> CameraStyle:
    """The style of camera ``cam`` (0-based) of ``preset``.

    ``shift`` scales how far each camera's light and colour (gain, gamma, contrast,
    saturation, colour cast) lie from the domain's centre: 1 is the preset, 0 gives every
    camera of the domain the same light and colour (the domain keeps its own), 0.5 halves
    the differences between cameras. The draws do not depend on it, so shift 1 gives the
    preset's bytes and any shift keeps the rest of each camera (scene, optics, noise)."""
    r, u = preset.camera, rng.uniform
    infrared = (cam + 1) in preset.infrared_cams
    indoor = (cam + 1) in preset.indoor_cams or (not preset.indoor_cams and rng.random() < preset.scenery.p_indoor)
    cast = np.array(r.cast) + rng.normal(0, r.cast_spread, 3)
    style = CameraStyle(
        cam=cam, infrared=infrared, indoor=bool(indoor),
        snow=bool(not indoor and rng.random() < preset.scenery.p_snow),
        gain=u(*r.gain), gamma=u(*r.gamma), contrast=u(*r.contrast), saturation=u(*r.saturation),
        cast=tuple(float(c) for c in cast), noise=u(*r.noise), blur=u(*r.blur),
        resolution=u(*r.resolution), jpeg=int(rng.integers(r.jpeg[0], r.jpeg[1] + 1)),
        vignette=u(*r.vignette), light=u(-1, 1), heading=u(-np.pi, np.pi))
    if shift != 1.0:
        _shrink(style, r, shift)
    if infrared and preset.thermal:  # a microbolometer: grey, low resolution, soft, little noise
        style.thermal, style.saturation, style.cast = True, 0.0, (0.0, 0.0, 0.0)
        style.resolution, style.blur = u(0.35, 0.5), u(0.7, 1.1)
        style.noise, style.vignette = u(1.0, 2.5), u(0.0, 0.1)
        style.gain, style.contrast, style.light = u(0.95, 1.1), u(1.05, 1.25), 0.0
    elif infrared:  # active NIR illumination: grey, somewhat noisier, brighter centre
        # (calibrated in docs/compare.md: with the earlier 1.6x + 2 noise, vignette 0.3-0.55 and
        # a 0.35 luminance tie, a one-stream model's infrared queries stayed near chance)
        style.saturation, style.cast = 0.0, (0.0, 0.0, 0.0)
        style.noise, style.vignette = style.noise * 1.2 + 1.0, u(0.15, 0.35)
        style.gain, style.contrast = u(0.9, 1.2), u(1.0, 1.3)
    return style


def _shrink(style: CameraStyle, r, shift: float) -> None:
    """Move ``style``'s light and colour toward the centre of the domain's ranges by ``shift``."""
    for name in ("gain", "gamma", "contrast", "saturation"):
        lo, hi = getattr(r, name)
        centre = (lo + hi) / 2
        setattr(style, name, float(centre + shift * (getattr(style, name) - centre)))
    style.cast = tuple(float(m + shift * (c - m)) for c, m in zip(style.cast, r.cast))


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    return k / max(k.sum(), 1e-6)


def _optics(img: np.ndarray, s: CameraStyle, motion: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    if s.resolution < 0.97:
        small = cv2.resize(img, (max(4, round(w * s.resolution)), max(8, round(h * s.resolution))),
                           interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if s.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), s.blur)
    if motion > 0:
        img = cv2.filter2D(img, -1, _motion_kernel(motion, rng.normal(0, 0.25)))
    return img


def apply_style(img: np.ndarray, s: CameraStyle, rng: np.random.Generator, *, gain: float = 1.0,
                cast: tuple[float, float, float] = (0.0, 0.0, 0.0), motion: float = 0.0) -> np.ndarray:
    """Camera pipeline on an RGB uint8 image; ``gain``/``cast`` add per-tracklet light."""
    x = _optics(img.astype(np.float32) / 255.0, s, motion, rng)
    x = x * np.exp(np.asarray(s.cast, np.float32) + np.asarray(cast, np.float32))
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = grey[..., None] + s.saturation * (x - grey[..., None])
    x = np.clip(x * (s.gain * gain), 0, None)
    x = np.clip((x - 0.5) * s.contrast + 0.5, 0, 1) ** s.gamma
    if s.vignette > 0:
        h, w = x.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rr = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
        x = x * (1.0 - s.vignette * rr / 2.0)[..., None]
    noise = rng.normal(0, s.noise / 255.0, x.shape[:2] + (1,)).astype(np.float32)
    if not s.infrared:  # luminance noise plus some chroma noise
        noise = noise + rng.normal(0, s.noise / 510.0, x.shape).astype(np.float32)
    return np.clip((x + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """RGB uint8 -> JPEG bytes (deterministic: libjpeg with fixed settings)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
