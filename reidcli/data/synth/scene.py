"""Background scenes: one wide panorama per camera, cropped at a different place per tracklet.

A scene is a wall band above a horizon and a ground plane below it, dressed from the
domain's scenery (building facades with windows and pillars, shop signs, trees or bare
branches, tiles and road markings, snow patches, poles, benches; indoor cameras get a
corridor with floor tiles, doors and ceiling lights). The panorama is drawn once per
camera from the camera's own seed, so every image of a camera shares its scene.
"""

from __future__ import annotations

import cv2
import numpy as np

from reidcli.data.synth.presets import Palette, Scenery


def pick(pal: Palette, rng: np.random.Generator, jitter: float = 10.0) -> np.ndarray:
    w = np.array([p[1] for p in pal], float)
    rgb = np.array(pal[rng.choice(len(pal), p=w / w.sum())][0], float)
    return np.clip(rgb + rng.normal(0, jitter, 3), 0, 255)


def _c(rgb) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(rgb, 0, 255))


def _facade(img: np.ndarray, hz: int, wall: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    img[:hz] = wall
    if rng.random() < 0.5:  # sky above the roof line
        roof = int(hz * rng.uniform(0.1, 0.35))
        img[:roof] = _c(rng.choice([(170, 200, 230), (200, 205, 210), (150, 170, 200)]) + rng.normal(0, 8, 3))
    else:
        roof = 0
    glass = np.array([rng.uniform(30, 80), rng.uniform(45, 90), rng.uniform(60, 110)])
    ww, gap = int(rng.uniform(0.06, 0.14) * h), int(rng.uniform(0.04, 0.1) * h)
    rows = np.arange(roof + gap, hz - ww // 2, ww + gap)
    for x in range(int(rng.uniform(0, gap)), w, ww + gap):
        for y in rows:
            if rng.random() < 0.9:
                cv2.rectangle(img, (x, int(y)), (x + ww, int(y) + ww), _c(glass + rng.normal(0, 12, 3)), -1)
    for _ in range(int(rng.integers(1, 4))):  # pillars, doors and signs
        x, pw = int(rng.uniform(0, w)), int(rng.uniform(0.03, 0.08) * w)
        cv2.rectangle(img, (x, roof), (x + pw, hz), _c(wall * rng.uniform(0.6, 0.85)), -1)
    for _ in range(int(rng.integers(0, 3))):
        x, y = int(rng.uniform(0, w)), int(rng.uniform(roof, hz * 0.8))
        cv2.rectangle(img, (x, y), (x + int(0.12 * w), y + int(0.05 * h)), _c(rng.uniform(30, 240, 3)), -1)


def _ground(img: np.ndarray, hz: int, ground: np.ndarray, snow: bool, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    img[hz:] = ground
    line = _c(ground * rng.uniform(0.75, 0.9))
    if rng.random() < 0.6:  # paving tiles, denser toward the horizon
        y, step = float(hz), 0.02 * h
        while y < h:
            cv2.line(img, (0, int(y)), (w, int(y)), line, 1)
            step *= 1.35
            y += step
        for x in range(0, w, int(rng.uniform(0.08, 0.2) * h)):
            cv2.line(img, (x, hz), (x + int((x - w / 2) * 0.4), h), line, 1)
    if rng.random() < 0.3:  # a road marking
        y = int(rng.uniform(hz + 0.1 * h, h - 0.05 * h))
        colour = (235, 235, 225) if rng.random() < 0.7 else (230, 200, 60)
        for x in range(0, w, int(0.12 * w)):
            cv2.rectangle(img, (x, y), (x + int(0.06 * w), y + max(2, int(0.015 * h))), colour, -1)
    if snow:
        for _ in range(int(rng.integers(6, 16))):
            c = (int(rng.uniform(0, w)), int(rng.uniform(hz, h)))
            ax = (int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0.02, 0.06) * h))
            cv2.ellipse(img, c, ax, 0, 0, 360, _c(np.array([228, 232, 240]) + rng.normal(0, 6, 3)), -1)


def _trees(img: np.ndarray, hz: int, sc: Scenery, bare: bool, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 5))):
        x, base = int(rng.uniform(0, w)), int(hz + rng.uniform(0, 0.08) * h)
        top = int(base - rng.uniform(0.4, 0.7) * h)
        trunk = _c((85, 65, 50) + rng.normal(0, 10, 3))
        cv2.line(img, (x, base), (x, top), trunk, max(2, int(0.015 * h)))
        if bare:
            for _ in range(6):
                y = int(rng.uniform(top, base - 0.1 * h))
                cv2.line(img, (x, y), (x + int(rng.normal(0, 0.06) * h), y - int(0.08 * h)), trunk, 1)
            continue
        leaf = pick(sc.foliage, rng, 12)
        for _ in range(8):
            c = (int(x + rng.normal(0, 0.07) * h), int(top + rng.normal(0.05, 0.06) * h))
            cv2.circle(img, c, int(rng.uniform(0.05, 0.1) * h), _c(leaf * rng.uniform(0.75, 1.15)), -1)


def _clutter(img: np.ndarray, hz: int, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 5))):
        x, kind = int(rng.uniform(0, w)), rng.integers(0, 3)
        col = _c(rng.uniform(40, 200, 3))
        if kind == 0:  # pole
            cv2.line(img, (x, int(hz - 0.3 * h)), (x, int(hz + 0.1 * h)), col, max(2, int(0.012 * h)))
        elif kind == 1:  # bench or bin
            y = int(hz + rng.uniform(0, 0.1) * h)
            cv2.rectangle(img, (x, y - int(0.08 * h)), (x + int(rng.uniform(0.05, 0.2) * w), y), col, -1)
        else:  # parked bicycle
            y, r = int(hz + rng.uniform(0.02, 0.1) * h), int(0.04 * h)
            cv2.circle(img, (x, y), r, col, 1)
            cv2.circle(img, (x + 3 * r, y), r, col, 1)
            cv2.line(img, (x, y), (x + 3 * r, y - r), col, 1)


def _indoor(img: np.ndarray, hz: int, sc: Scenery, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    wall = pick(sc.wall, rng, 8) * 0.5 + 110
    img[:hz] = _c(wall)
    img[hz:] = _c(rng.uniform(150, 215) + rng.normal(0, 10, 3))
    for y in range(hz, h, int(0.06 * h)):
        cv2.line(img, (0, y), (w, y), _c(img[h - 1, 0] * 0.85), 1)
    for x in range(int(rng.uniform(0, 0.3) * w), w, int(rng.uniform(0.25, 0.45) * w)):  # doors
        cv2.rectangle(img, (x, int(hz - 0.45 * h)), (x + int(0.1 * w), hz), _c(rng.uniform(60, 170, 3)), -1)
    for x in range(0, w, int(0.2 * w)):  # ceiling lights
        cv2.rectangle(img, (x, 0), (x + int(0.08 * w), int(0.02 * h)), (250, 250, 240), -1)


def make_scene(sc: Scenery, h: int, w: int, *, indoor: bool, snow: bool,
               rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 panorama [h, w, 3] for one camera."""
    img = np.zeros((h, w, 3), np.uint8)
    hz = int(h * rng.uniform(0.45, 0.62))  # horizon: people stand below it in a crop
    if indoor:
        _indoor(img, hz, sc, rng)
    else:
        _facade(img, hz, pick(sc.wall, rng), rng)
        _ground(img, hz, pick(sc.ground, rng), snow, rng)
        if rng.random() < sc.p_trees:
            _trees(img, hz, sc, snow, rng)
    _clutter(img, hz, rng)
    small = rng.normal(0, 1, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    small = small[..., :1] + 0.25 * small  # mostly luminance: dirt and shadows, not confetti
    noise = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * 8.0
    out = cv2.GaussianBlur(img.astype(np.float32) + noise, (0, 0), 1.2)
    return np.clip(out, 0, 255).astype(np.uint8)
