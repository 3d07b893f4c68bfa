"""The articulated body: a 3-D walking skeleton, projected and rasterised into a part map.

The skeleton lives in a body frame in units of body height: x to the person's left,
y down from the top of the head (soles at 1), z forward. A walk cycle (phase, stride,
arm swing) bends hips, knees, shoulders and elbows; the body is turned by a yaw
(0 = facing the camera, pi = seen from behind, +pi/2 = walking to the image's right)
and projected orthographically. Every body part (capsules for limbs, convex hulls of
3-D boxes for torso, bags and hats) is drawn far-to-near into one *part map*; each part
has a material (skin, upper garment, ...) and a depth, so the same raster gives the
materials to texture and, per keypoint, whether a nearer part hides it.

The 17 COCO keypoints are joints of this skeleton, so they are exactly on the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reidcli.data.synth.identity import Identity
from reidcli.io.h5 import COCO17_NAMES

SKIN, HAIR, UPPER, LOWER, SHOES, BAG, HAT, LOGO, STRAP = range(1, 10)
MATERIALS = ("background", "skin", "hair", "upper", "lower", "shoes", "bag", "hat", "logo", "strap")
_SHIFT = 2  # cv2 fixed-point bits: quarter-pixel positions
_F = 1 << _SHIFT
_SPHERE = np.array([(np.cos(a) * np.sin(b), -np.cos(b), np.sin(a) * np.sin(b))
                    for b in np.linspace(0.0, np.pi, 9) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)])


@dataclass
class Pose:
    """Per-image articulation and view."""

    yaw: float
    phase: float
    stride: float = 0.35  # hip swing amplitude (rad)
    arm_swing: float = 0.35  # shoulder swing amplitude (rad)


@dataclass
class Placement:
    """Where the person lands in the canvas (pixels of the canvas)."""

    height: float  # body height in pixels
    cx: float  # x of the body axis
    top: float  # y of the top of the head
    aspect: float = 1.0  # horizontal stretch (detector boxes of varying aspect resized)


def _v(x, y, z) -> np.ndarray:
    return np.array((x, y, z), float)


def skeleton(ident: Identity, pose: Pose) -> dict[str, np.ndarray]:
    """3-D joints in the body frame (COCO-17 names plus helper joints)."""
    s = ident.shape
    r, y_sh = s.head, 2 * s.head + 0.045
    y_hip = 0.965 - s.leg_len
    j = {"head": _v(0, r, 0), "neck": _v(0, 2 * r + 0.005, 0),
         "nose": _v(0, 1.15 * r, 0.95 * r), "hip_c": _v(0, y_hip, 0)}
    for side, name in ((1, "left"), (-1, "right")):
        j[f"{name}_eye"] = _v(side * 0.38 * r, 0.85 * r, 0.82 * r)
        j[f"{name}_ear"] = _v(side * 0.97 * r, 1.0 * r, -0.05 * r)
        sh = j[f"{name}_shoulder"] = _v(side * s.shoulder, y_sh, 0)
        hip = j[f"{name}_hip"] = _v(side * s.hip, y_hip, 0)
        th = side * pose.stride * np.sin(pose.phase)
        flex = 0.1 + 1.4 * pose.stride * max(0.0, side * np.cos(pose.phase))
        thigh, shin = 0.52 * s.leg_len, 0.48 * s.leg_len
        knee = j[f"{name}_knee"] = hip + thigh * _v(0.02 * side, np.cos(th), np.sin(th))
        ankle = j[f"{name}_ankle"] = knee + shin * _v(0, np.cos(th - flex), np.sin(th - flex))
        j[f"{name}_toe"], j[f"{name}_heel"] = ankle + _v(0, 0.025, 0.065), ankle + _v(0, 0.02, -0.02)
        swing = pose.arm_swing * (0.35 if ident.bag == "handbag" and ident.bag_side == side else 1.0)
        a = -side * swing * np.sin(pose.phase)
        elbow = j[f"{name}_elbow"] = sh + 0.165 * _v(0.1 * side, np.cos(a), np.sin(a))
        b = a + 0.15 + 0.6 * max(0.0, np.sin(a))
        wrist = j[f"{name}_wrist"] = elbow + 0.145 * _v(0.05 * side, np.cos(b), np.sin(b))
        j[f"{name}_hand"] = wrist + 0.035 * _v(0, np.cos(b), np.sin(b))
    return j


class _Raster:
    """Draws parts into a part map and keeps each part's material and depth."""

    def __init__(self, hw: tuple[int, int], yaw: float, place: Placement):
        self.map = np.zeros(hw, np.uint8)
        self.c, self.s = np.cos(yaw), np.sin(yaw)
        self.place = place
        self.parts: list[tuple[float, int, str, int, np.ndarray, float]] = []

    def rot(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project [N, 3] body points: returns canvas xy [N, 2] and depth [N] (toward camera +)."""
        p = np.atleast_2d(p)
        x = p[:, 0] * self.c + p[:, 2] * self.s
        d = -p[:, 0] * self.s + p[:, 2] * self.c
        pl = self.place
        return np.stack([pl.cx + x * pl.height * pl.aspect, pl.top + p[:, 1] * pl.height], 1), d

    def add(self, kind: str, mat: int, pts, radius: float = 0.0, bias: float = 0.0,
            depth: str = "mean") -> None:
        pts = np.asarray(pts, float)
        _, d = self.rot(pts)
        dep = float(d.max() if depth == "max" else d.mean()) + bias
        self.parts.append((dep, len(self.parts), kind, mat, pts, radius))

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """Rasterise far-to-near; returns (material LUT, depth LUT) indexed by part id."""
        order = sorted(self.parts, key=lambda t: (t[0], t[1]))[:254]
        mats, deps = np.zeros(len(order) + 1, np.uint8), np.full(len(order) + 1, -9.0, np.float32)
        scale = self.place.height
        for pid, (dep, _, kind, mat, pts, radius) in enumerate(order, start=1):
            xy, _ = self.rot(pts)
            q = np.round(xy * _F).astype(np.int32)
            if kind == "cap":
                th = max(1, int(round(2 * radius * scale)))
                cv2.line(self.map, tuple(q[0]), tuple(q[1]), pid, th, cv2.LINE_8, _SHIFT)
            elif kind == "disc":
                cv2.circle(self.map, tuple(q[0]), max(1, int(round(radius * scale * _F))), pid, -1,
                           cv2.LINE_8, _SHIFT)
            else:
                cv2.fillConvexPoly(self.map, cv2.convexHull(q), pid, cv2.LINE_8, _SHIFT)
            mats[pid], deps[pid] = mat, dep
        return mats, deps


def _box(x0, x1, y0, y1, z0, z1) -> np.ndarray:
    return np.array([(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], float)


def _head_parts(R: _Raster, ident: Identity, j: dict) -> None:
    r, hc = ident.shape.head, j["head"]
    R.add("disc", SKIN, [hc + _v(0, 0.12 * r, 0.35 * r)], 0.84 * r)  # face
    hair = _SPHERE * 1.05 * r
    keep = (hair[:, 1] < -0.25 * r) | ((hair[:, 2] < -0.2 * r) & (hair[:, 1] < 0.55 * r))
    R.add("hull", HAIR, hc + hair[keep], bias=0.0, depth="mean")
    if ident.long_hair:
        R.add("cap", HAIR, [hc + _v(0, 0, -0.6 * r), _v(0, j["left_shoulder"][1] + 0.07,
                                                     -(ident.shape.thick + 0.012))], 0.85 * r)
    if ident.hat != "none":
        cap = _SPHERE * (1.1 if ident.hat == "beanie" else 1.08) * r
        cap = cap[cap[:, 1] < (0.05 if ident.hat == "beanie" else -0.3) * r]
        R.add("hull", HAT, hc + cap, bias=0.02)
        if ident.hat == "cap":
            t = np.linspace(0, np.pi, 7)
            brim = [hc + _v(1.0 * r * np.cos(a), -0.3 * r + dy, 0.5 * r + 0.9 * r * np.sin(a))
                    for a in t for dy in (-0.07 * r, 0.07 * r)]
            R.add("hull", HAT, brim, bias=0.03)


def _torso_parts(R: _Raster, ident: Identity, j: dict) -> None:
    s, ysh, yh = ident.shape, j["left_shoulder"][1], j["hip_c"][1]
    R.add("cap", SKIN, [j["neck"], j["head"]], 0.022, bias=-0.05)
    if ident.coat > 0:
        pts = np.vstack([_box(-s.shoulder, s.shoulder, ysh - 0.012, ysh, -s.thick, s.thick),
                         _box(-s.hip - 0.035, s.hip + 0.035, yh + ident.coat - 0.01, yh + ident.coat,
                              -s.thick - 0.012, s.thick + 0.012)])
        R.add("hull", UPPER, pts, depth="max")
    else:
        pts = np.vstack([_box(-s.shoulder, s.shoulder, ysh - 0.012, ysh, -s.thick, s.thick),
                         _box(-s.hip * 1.05, s.hip * 1.05, yh - 0.012, yh - 0.004, -s.thick * 0.9, s.thick * 0.9)])
        R.add("hull", UPPER, pts)
    if ident.legs == "skirt":
        R.add("hull", LOWER, np.vstack([_box(-s.hip - 0.01, s.hip + 0.01, yh - 0.03, yh - 0.02, -s.thick, s.thick),
                                        _box(-s.hip - 0.06, s.hip + 0.06, yh + 0.2, yh + 0.21,
                                             -s.thick - 0.03, s.thick + 0.03)]), depth="max", bias=0.001)
    else:
        R.add("hull", LOWER, np.vstack([_box(-s.hip - 0.6 * s.leg, s.hip + 0.6 * s.leg, yh - 0.012, yh,
                                             -s.thick * 0.9, s.thick * 0.9),
                                        _box(-s.hip * 0.4, s.hip * 0.4, yh + 0.07, yh + 0.08,
                                             -s.thick * 0.7, s.thick * 0.7)]), bias=-0.001)
    _logo(R, ident, ysh)


def _logo(R: _Raster, ident: Identity, ysh: float) -> None:
    g, t = ident.upper, ident.shape.thick + 0.004
    if g.pattern != "logo" or (R.c > -0.25 if g.logo_back else R.c < 0.25):
        return  # a chest print is seen only from the front, a back print only from behind
    z = -t if g.logo_back else t
    if g.logo_shape == 0:
        pts = [(x, y, z) for x in (-0.045, 0.045) for y in (ysh + 0.04, ysh + 0.11)]
    elif g.logo_shape == 1:
        pts = [(0.042 * np.cos(a), ysh + 0.085 + 0.042 * np.sin(a), z) for a in np.linspace(0, 6.28, 10)]
    else:
        w = ident.shape.shoulder * 0.92
        pts = [(x, y, z) for x in (-w, w) for y in (ysh + 0.06, ysh + 0.095)]
    R.add("hull", LOGO, pts, bias=0.01)


def _limb_parts(R: _Raster, ident: Identity, j: dict) -> None:
    s = ident.shape
    for name in ("left", "right"):
        sh, el, wr, hand = (j[f"{name}_{k}"] for k in ("shoulder", "elbow", "wrist", "hand"))
        hip, kn, an = j[f"{name}_hip"], j[f"{name}_knee"], j[f"{name}_ankle"]
        R.add("cap", SKIN, [sh, el], s.arm)
        sleeve_end = el if ident.long_sleeve else sh + 0.55 * (el - sh)
        R.add("cap", UPPER, [sh, sleeve_end], s.arm * 1.3, bias=0.001)
        R.add("cap", UPPER if ident.long_sleeve else SKIN, [el, wr], s.arm * (1.1 if ident.long_sleeve else 0.9))
        R.add("disc", SKIN, [hand], s.arm * 1.05)
        trousers = ident.legs == "trousers"
        R.add("cap", SKIN if ident.legs == "skirt" else LOWER, [hip, kn], s.leg * (0.9 if ident.legs == "skirt" else 1.15))
        if ident.legs == "shorts":
            R.add("cap", SKIN, [hip + 0.75 * (kn - hip), kn], s.leg * 0.85, bias=0.001)
        R.add("cap", LOWER if trousers else SKIN, [kn, an], s.leg * (0.95 if trousers else 0.75))
        R.add("cap", SHOES, [j[f"{name}_heel"], j[f"{name}_toe"]], s.leg * 0.72, bias=0.002)


def _bag_parts(R: _Raster, ident: Identity, j: dict) -> None:
    s, ysh, yh = ident.shape, j["left_shoulder"][1], j["hip_c"][1]
    if ident.bag == "backpack":
        R.add("hull", BAG, _box(-0.085, 0.085, ysh + 0.01, ysh + 0.24, -s.thick - 0.09, -s.thick - 0.005))
        for side in (1, -1):
            R.add("cap", STRAP, [_v(side * s.shoulder * 0.55, ysh - 0.008, s.thick * 0.4),
                                 _v(side * s.shoulder * 0.55, ysh + 0.17, s.thick + 0.006)], 0.008)
    elif ident.bag == "handbag":
        side = ident.bag_side
        x = side * (s.hip + 0.055)
        R.add("hull", BAG, _box(x - 0.045, x + 0.045, yh - 0.05, yh + 0.07, -0.025, 0.03))
        for z in (s.thick + 0.006, -s.thick - 0.006):
            R.add("cap", STRAP, [_v(-side * s.shoulder * 0.6, ysh - 0.005, z), _v(x, yh - 0.05, z * 0.6)], 0.006)


def render_parts(ident: Identity, pose: Pose, place: Placement, hw: tuple[int, int]):
    """Rasterise one person.

    Returns ``(part_map [H, W] uint8, material LUT, depth LUT, keypoints [17, 2], kp_depth [17])``;
    ``LUT[part_map]`` gives the material / depth image.
    """
    j = skeleton(ident, pose)
    R = _Raster(hw, pose.yaw, place)
    _head_parts(R, ident, j)
    _torso_parts(R, ident, j)
    _limb_parts(R, ident, j)
    _bag_parts(R, ident, j)
    mats, deps = R.draw()
    kp, kd = R.rot(np.stack([j[n] for n in COCO17_NAMES]))
    return R.map, mats, deps, kp, kd


def keypoint_visibility(part_map: np.ndarray, deps: np.ndarray, kp: np.ndarray, kd: np.ndarray,
                        tol: float = 0.05, far: float = 0.03) -> np.ndarray:
    """0.5 (self-occluded) for a keypoint on the far side of the body (depth < -``far``) that a
    nearer part covers, else 1. Joints near the body's mid-plane count as visible under their
    own sleeve or coat, as COCO annotators label a hip under a jacket."""
    h, w = part_map.shape
    xi = np.clip(np.round(kp[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(kp[:, 1]).astype(int), 0, h - 1)
    front = deps[part_map[yi, xi]]
    return np.where((kd < -far) & (front > kd + tol), 0.5, 1.0)
