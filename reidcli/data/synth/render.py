"""One image: scene crop, person (textured, shaded), occluders, camera pipeline, keypoints.

Rendering happens on a canvas twice the output size and is area-down-sampled, which
anti-aliases every edge. Each image draws its own randomness from
``default_rng([seed, 7, job.index])``, so the bytes of an image depend only on the seed
and the image's place in the plan, not on worker count or order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from reidcli.data.synth import body
from reidcli.data.synth.body import Placement, Pose
from reidcli.data.synth.camera import TIME_OF_DAY, CameraStyle, apply_style, encode_jpeg
from reidcli.data.synth.identity import Identity
from reidcli.data.synth.presets import Preset
from reidcli.data.synth.scene import make_scene, pick

SS = 2  # super-sampling factor
OCCLUDED, SELF_OCCLUDED, OUTSIDE = 0.2, 0.5, 0.0


@dataclass
class Job:
    """One image of the plan."""

    path: str  # relative to the dataset root, as the layout parser's Record.path
    kind: str  # person | distractor | junk
    ident: int  # index into Context.identities (-1: none)
    cam: int  # 0-based camera
    heading: float  # walking direction of this tracklet (yaw, rad)
    bg_x: float  # where in the camera's panorama the tracklet happens (0..1)
    tod: str = ""  # time of day (MSMT17-style presets)
    index: int = 0  # position in the plan: the image's seed key
    key: int = -1  # seed key when not ``index``: a thermal image shares its visible twin's (pose, place)


@dataclass
class Context:
    preset: Preset
    identities: list[Identity]
    cameras: list[CameraStyle]
    height: int
    width: int
    seed: int
    scenes: dict[int, np.ndarray] = field(default_factory=dict)

    def scene(self, cam: int) -> np.ndarray:
        if cam not in self.scenes:
            s = self.cameras[cam]
            src = 0 if s.thermal else cam  # a dual camera: the thermal half sees the visible half's scene
            rng = np.random.default_rng([self.seed, 3, src])
            img = make_scene(self.preset.scenery, SS * self.height, SS * self.width * 6,
                             indoor=self.cameras[src].indoor, snow=self.cameras[src].snow, rng=rng)
            if s.thermal:  # ambient temperature: cool, smooth, the scene's texture almost gone
                g = cv2.GaussianBlur(img.astype(np.float32) @ np.array([0.3, 0.4, 0.3], np.float32), (0, 0), 3.0)
                img = np.repeat(np.clip(g * 0.18 + 38, 0, 255).astype(np.uint8)[..., None], 3, 2)
            elif s.infrared:  # NIR: foliage bright, glass dark, little colour contrast
                g = img.astype(np.float32) @ np.array([0.2, 0.6, 0.2], np.float32)
                img = np.repeat(np.clip(g * 0.7 + 20, 0, 255).astype(np.uint8)[..., None], 3, 2)
            self.scenes[cam] = img
        return self.scenes[cam]


def _colours(ident: Identity, infrared: bool, thermal: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Material colour table, and the second colours of the upper/lower patterns (infrared:
    the identity's NIR reflectance, thermal: its heat levels, both grey)."""
    cols = np.zeros((len(body.MATERIALS), 3), np.float32)
    c2u, c2l = np.array(ident.upper.colour2, np.float32), np.array(ident.lower.colour2, np.float32)
    if infrared:
        ir = ident.thermal if thermal else ident.ir
        for m, k in ((body.SKIN, "skin"), (body.HAIR, "hair"), (body.UPPER, "upper"), (body.LOWER, "lower"),
                     (body.SHOES, "shoes"), (body.BAG, "bag"), (body.HAT, "hat"), (body.LOGO, "upper2"),
                     (body.STRAP, "bag")):
            cols[m] = 255.0 * ir[k]
        return cols, np.full(3, 255.0 * ir["upper2"], np.float32), np.full(3, 255.0 * ir["lower2"], np.float32)
    for m, c in ((body.SKIN, ident.skin), (body.HAIR, ident.hair), (body.UPPER, ident.upper.colour),
                 (body.LOWER, ident.lower.colour), (body.SHOES, ident.shoes), (body.BAG, ident.bag_colour),
                 (body.HAT, ident.hat_colour), (body.LOGO, ident.upper.colour2)):
        cols[m] = c
    cols[body.STRAP] = cols[body.BAG] * 0.7
    return cols, c2u, c2l


def _pattern(rgb, mat, which, garment, c2, place: Placement, y0: float) -> None:
    if garment.pattern in ("plain", "logo"):
        return
    ys, xs = np.nonzero(mat == which)
    p = max(2.0, garment.period * place.height)
    if garment.pattern == "stripes":
        on = ((ys - y0) / p) % 1.0 < 0.45
    elif garment.pattern == "checks":
        on = (np.floor((xs - place.cx) / p) + np.floor((ys - y0) / p)) % 2 == 1
    else:  # colorblock: the chest and shoulders in the second colour
        on = ys < y0 + 0.11 * place.height
    rgb[ys[on], xs[on]] = c2 if garment.pattern != "checks" else 0.4 * rgb[ys[on], xs[on]] + 0.6 * c2


def draw_person(canvas: np.ndarray, ident: Identity, pose: Pose, place: Placement, light: float,
                infrared: bool, thermal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Composite one person onto ``canvas`` (in place); returns canvas keypoints and visibility.
    Thermal: emitted heat, so no key light; the torso's core is a little warmer than the edges."""
    hw = canvas.shape[:2]
    pmap, mats, deps, kp, kd = body.render_parts(ident, pose, place, hw)
    vis = body.keypoint_visibility(pmap, deps, kp, kd)
    mat = mats[pmap]
    cols, c2u, c2l = _colours(ident, infrared, thermal)
    rgb = cols[mat]
    y0 = place.top + (2 * ident.shape.head + 0.045) * place.height
    _pattern(rgb, mat, body.UPPER, ident.upper, c2u, place, y0)
    _pattern(rgb, mat, body.LOWER, ident.lower, c2l, place, place.top + (0.965 - ident.shape.leg_len) * place.height)
    person = pmap > 0
    ys, xs = np.nonzero(person)
    if thermal:
        shade = 1.0 - 0.1 * np.abs(np.tanh((xs - place.cx) / (0.12 * place.height)))
    else:
        shade = 1.0 + 0.22 * light * np.tanh((xs - place.cx) / (0.12 * place.height)) \
            - 0.12 * (ys - place.top) / place.height
    canvas[ys, xs] = np.clip(rgb[ys, xs] * shade[:, None], 0, 255)
    return kp, vis


def _shadow(canvas: np.ndarray, place: Placement, light: float) -> None:
    mask = np.zeros(canvas.shape[:2], np.uint8)
    c = (int(place.cx - light * 0.06 * place.height), int(place.top + 0.985 * place.height))
    cv2.ellipse(mask, c, (int(0.2 * place.height * place.aspect), max(1, int(0.025 * place.height))),
                0, 0, 360, 255, -1)
    m = cv2.GaussianBlur(mask, (0, 0), 2.0).astype(np.float32) / 255.0
    canvas *= (1.0 - 0.35 * m)[..., None]


def _occluder(canvas: np.ndarray, preset: Preset, rng: np.random.Generator, infrared: bool) -> np.ndarray:
    """Something between the camera and the person; returns its mask."""
    h, w = canvas.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    kind = rng.choice(["pole", "low", "passer", "passer"])
    if kind == "pole":
        x, pw = int(rng.uniform(0.15, 0.85) * w), int(rng.uniform(0.07, 0.16) * w)
        cv2.rectangle(mask, (x, 0), (x + pw, h), 255, -1)
        colour = rng.uniform(60, 200) + rng.normal(0, 10, 3)
    elif kind == "low":  # car bonnet, bench, bush or railing over the legs
        y = int(rng.uniform(0.58, 0.82) * h)
        cv2.ellipse(mask, (int(rng.uniform(0.2, 0.8) * w), h), (int(rng.uniform(0.5, 1.0) * w), h - y),
                    0, 180, 360, 255, -1)
        colour = pick(preset.scenery.foliage, rng, 15) if rng.random() < 0.4 else rng.uniform(30, 220, 3)
    else:  # another pedestrian passing close to the camera
        left = rng.random() < 0.5
        x = int(rng.uniform(0.18, 0.42) * w)
        x0, x1 = (0, x) if left else (w - x, w)
        cv2.rectangle(mask, (x0, int(rng.uniform(0.15, 0.3) * h)), (x1, h), 255, -1)
        cv2.circle(mask, ((x0 + x1) // 2, int(0.13 * h)), int(0.09 * h), 255, -1)
        colour = pick(preset.clothing.upper, rng, 20)
    if infrared:
        colour = np.full(3, colour.mean() * 0.7 + 40)
    m = mask > 0
    canvas[m] = colour * rng.uniform(0.85, 1.1, size=(int(m.sum()), 1)) ** 0.2
    return m


def _placement(kind: str, h: int, w: int, rng: np.random.Generator) -> Placement:
    if kind == "junk":  # a detection of part of a body, badly framed
        hgt = h * rng.uniform(1.5, 2.4)
        return Placement(hgt, w * rng.uniform(0.2, 0.8), -rng.uniform(0.0, hgt - h * 0.8), rng.uniform(0.9, 1.3))
    if kind == "distractor":  # a far, small or cut-off person, or none at all
        hgt = h * rng.uniform(0.3, 0.6)
        return Placement(hgt, w * rng.uniform(-0.1, 1.1), rng.uniform(0.0, h - hgt), 1.1)
    hgt = h * (rng.uniform(0.84, 0.98) if rng.random() > 0.12 else rng.uniform(0.98, 1.15))
    top = (h - hgt) * rng.uniform(0.2, 0.8) + rng.normal(0, 0.025) * h
    return Placement(hgt, w / 2 + rng.normal(0, 0.06) * w, top, rng.uniform(0.85, 1.15))


def _final_keypoints(kp: np.ndarray, vis: np.ndarray, occ: np.ndarray, h: int, w: int) -> np.ndarray:
    """Canvas keypoints -> output pixels with COCO-like scores (1, 0.5 self, 0.2 occluded, 0 outside)."""
    H, W = h // SS, w // SS
    xy = (kp + 0.5) / SS - 0.5
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= W - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= H - 1)
    xi, yi = np.clip(np.round(kp[:, 0]).astype(int), 0, w - 1), np.clip(np.round(kp[:, 1]).astype(int), 0, h - 1)
    score = np.where(occ[yi, xi], np.minimum(vis, OCCLUDED), vis)
    score = np.where(inside, score, OUTSIDE)
    xy = np.stack([np.clip(xy[:, 0], 0, W - 1), np.clip(xy[:, 1], 0, H - 1)], 1)
    return np.concatenate([xy, score[:, None]], 1).astype(np.float32)


def render_job(ctx: Context, job: Job) -> tuple[bytes, np.ndarray]:
    """JPEG bytes and [17, 3] keypoints (x, y, score in output pixels) of one planned image."""
    rng = np.random.default_rng([ctx.seed, 7, job.index if job.key < 0 else job.key])
    cam, H, W = ctx.cameras[job.cam], SS * ctx.height, SS * ctx.width
    scene = ctx.scene(job.cam)
    x0 = int(np.clip(job.bg_x + rng.normal(0, 0.02), 0, 1) * (scene.shape[1] - W))
    canvas = scene[:, x0:x0 + W].astype(np.float32)
    if job.kind == "person" and rng.random() < 0.15:  # someone else in the background
        other = ctx.identities[int(rng.integers(len(ctx.identities)))]
        bp = Placement(H * rng.uniform(0.7, 0.9), W * rng.choice([-0.05, 1.05]) + rng.normal(0, 0.1) * W,
                       H * rng.uniform(-0.05, 0.1), 1.1)
        draw_person(canvas, other, Pose(rng.uniform(-np.pi, np.pi), rng.uniform(0, 2 * np.pi)), bp,
                    cam.light, cam.infrared, cam.thermal)
    kps = np.zeros((17, 3), np.float32)
    occ = np.zeros((H, W), bool)
    show = job.ident >= 0 and not (job.kind == "distractor" and rng.random() < 0.5)
    if show:
        ident = ctx.identities[job.ident]
        pose = Pose(yaw=job.heading + rng.normal(0, 0.3), phase=rng.uniform(0, 2 * np.pi),
                    stride=rng.uniform(0.2, 0.45), arm_swing=rng.uniform(0.15, 0.5))
        place = _placement(job.kind, H, W, rng)
        if not cam.thermal:
            _shadow(canvas, place, cam.light)
        kp, vis = draw_person(canvas, ident, pose, place, cam.light, cam.infrared, cam.thermal)
        if job.kind == "person" and rng.random() < ctx.preset.camera.p_occlusion:
            occ = _occluder(canvas, ctx.preset, rng, cam.infrared)
        kps = _final_keypoints(kp, vis, occ, H, W)
    img = cv2.resize(np.clip(canvas, 0, 255).astype(np.uint8), (ctx.width, ctx.height), interpolation=cv2.INTER_AREA)
    gain, cast = TIME_OF_DAY.get(job.tod, (1.0, (0.0, 0.0, 0.0)))
    motion = rng.uniform(2.0, 5.0) * ctx.width / 64 if rng.random() < ctx.preset.camera.p_motion_blur else 0.0
    img = apply_style(img, cam, rng, gain=gain * rng.uniform(0.92, 1.08), cast=cast, motion=motion)
    return encode_jpeg(img, cam.jpeg), kps
