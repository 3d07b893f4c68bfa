"""Identities: what makes one synthetic person different from every other.

An identity fixes body shape, skin and hair, upper and lower clothing (colour, pattern,
sleeve and leg length, coat), shoes, bag and hat. A share of identities are *near
duplicates* of an earlier one with one or two attributes changed (another bag, other
shoes, a pattern where the other is plain, ...), so that hard negatives exist as in real
crowds where many people wear black tops and jeans.

Each identity also carries its near-infrared reflectances (grey levels): 0.6 of a garment's
visible luminance and 0.4 drawn per material, because a garment's NIR brightness follows
its visible one only in part (real SYSU-MM01 baselines keep about half their visible mAP
from infrared queries).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from reidcli.data.synth.presets import Clothing, Palette

SKIN = np.array([(235, 200, 170), (215, 170, 135), (190, 140, 100), (150, 105, 70), (105, 70, 50)], float)
SKIN_P = np.array([3, 4, 3, 1.5, 1])


@dataclass
class Shape:
    """Body proportions as fractions of the body height (top of head to soles)."""

    head: float  # head radius
    shoulder: float  # half shoulder width
    hip: float  # half hip width
    thick: float  # half torso depth
    arm: float  # arm radius
    leg: float  # leg radius
    leg_len: float  # hip joint to ankle


@dataclass
class Garment:
    colour: tuple[float, float, float]
    pattern: str = "plain"  # plain | stripes | checks | logo | colorblock
    colour2: tuple[float, float, float] = (0.0, 0.0, 0.0)  # stripes/checks/logo/block colour
    period: float = 0.05  # stripe or check period, fraction of body height
    logo_back: bool = False  # the print is on the back (seen only from behind)
    logo_shape: int = 0  # 0 rectangle, 1 disc, 2 band


@dataclass
class Identity:
    shape: Shape
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    long_hair: bool
    upper: Garment
    lower: Garment
    long_sleeve: bool
    coat: float  # hem below the hips as a fraction of height (0 = a normal top)
    legs: str  # trousers | shorts | skirt
    shoes: tuple[float, float, float]
    bag: str  # none | backpack | handbag
    bag_colour: tuple[float, float, float]
    bag_side: int  # +1 person's left, -1 right
    hat: str  # none | cap | beanie
    hat_colour: tuple[float, float, float]
    ir: dict[str, float] = field(default_factory=dict)  # near-infrared grey level per material
    thermal: dict[str, float] = field(default_factory=dict)  # far-infrared (heat) level per material
    parent: int = -1  # index of the identity it is a near duplicate of


def _pick(pal: Palette, rng: np.random.Generator, jitter: float) -> tuple[float, float, float]:
    w = np.array([p[1] for p in pal], float)
    rgb = np.array(pal[rng.choice(len(pal), p=w / w.sum())][0], float)
    rgb = rgb + rng.normal(0.0, jitter, 3) + rng.normal(0.0, jitter * 0.6)  # hue + brightness
    return tuple(np.clip(rgb, 5, 250).tolist())


def _shape(rng: np.random.Generator) -> Shape:
    build = rng.uniform(0.85, 1.3)
    return Shape(head=rng.uniform(0.058, 0.07), shoulder=rng.uniform(0.105, 0.13) * build ** 0.5,
                 hip=rng.uniform(0.075, 0.095) * build ** 0.5, thick=rng.uniform(0.05, 0.065) * build,
                 arm=rng.uniform(0.022, 0.03) * build, leg=rng.uniform(0.032, 0.042) * build,
                 leg_len=rng.uniform(0.45, 0.5))


def _garment(c: Clothing, pal: Palette, rng: np.random.Generator, upper: bool) -> Garment:
    names = list(c.patterns)
    w = np.array([c.patterns[n] for n in names])
    pattern = names[rng.choice(len(names), p=w / w.sum())] if upper else (
        "plain" if rng.random() > 0.08 else "checks")
    g = Garment(colour=_pick(pal, rng, c.colour_jitter), pattern=pattern)
    if pattern != "plain":
        g.colour2 = _pick(c.upper, rng, c.colour_jitter)
        if np.abs(np.subtract(g.colour2, g.colour)).sum() < 90:  # keep the pattern visible
            g.colour2 = tuple(float(255 - v * 0.8) for v in g.colour)
        g.period = rng.uniform(0.025, 0.06)
        g.logo_back = bool(rng.random() < 0.35)
        g.logo_shape = int(rng.integers(0, 3))
    return g


def _ir_levels(ident: Identity, rng: np.random.Generator) -> dict[str, float]:
    def ir(rgb):  # NIR reflectance: tied to visible luminance (0.6), the rest material
        lum = (0.3 * rgb[0] + 0.59 * rgb[1] + 0.11 * rgb[2]) / 255.0
        return float(np.clip(0.6 * lum + 0.4 * rng.uniform(0.1, 0.95), 0.05, 0.95))

    return {"skin": float(rng.uniform(0.7, 0.9)), "hair": float(rng.uniform(0.08, 0.3)),
            "upper": ir(ident.upper.colour), "upper2": ir(ident.upper.colour2),
            "lower": ir(ident.lower.colour), "lower2": ir(ident.lower.colour2),
            "shoes": ir(ident.shoes), "bag": ir(ident.bag_colour), "hat": ir(ident.hat_colour)}


def thermal_levels(ident: Identity, rng: np.random.Generator) -> dict[str, float]:
    """Far-infrared grey level per material: emitted heat, not reflected light. Skin is the
    warmest; a garment is as warm as the body heat that passes it (a coat is cooler than a
    T-shirt), whatever its colour; shoes, bags and hair are near the (cool) ambient; a print
    has the emissivity of its fabric, so stripes, checks and logos all but vanish."""
    upper = rng.uniform(0.36, 0.5) if ident.coat > 0 else (
        rng.uniform(0.5, 0.64) if ident.long_sleeve else rng.uniform(0.6, 0.74))
    lower = rng.uniform(0.46, 0.6) if ident.legs == "trousers" else rng.uniform(0.56, 0.7)
    return {"skin": float(rng.uniform(0.86, 0.97)), "hair": float(rng.uniform(0.34, 0.5)),
            "upper": float(upper), "upper2": float(upper + rng.uniform(-0.03, 0.03)),
            "lower": float(lower), "lower2": float(lower + rng.uniform(-0.03, 0.03)),
            "shoes": float(rng.uniform(0.22, 0.36)), "bag": float(rng.uniform(0.2, 0.34)),
            "hat": float(rng.uniform(0.4, 0.55))}


def sample_identity(c: Clothing, rng: np.random.Generator) -> Identity:
    """One fresh identity drawn from a domain's clothing distribution."""
    coat = rng.random() < c.p_coat
    long_sleeve = coat or rng.random() < c.p_long_sleeve
    long_trousers = rng.random() < c.p_long_trousers
    legs = "trousers" if long_trousers else ("skirt" if rng.random() < c.p_skirt else "shorts")
    r = rng.random()
    bag = "backpack" if r < c.p_backpack else ("handbag" if r < c.p_backpack + c.p_handbag else "none")
    hat = "none"
    if rng.random() < c.p_hat:
        hat = "beanie" if rng.random() < c.p_beanie else "cap"
    skin = SKIN[rng.choice(len(SKIN), p=SKIN_P / SKIN_P.sum())] + rng.normal(0, 8, 3)
    ident = Identity(
        shape=_shape(rng), skin=tuple(np.clip(skin, 30, 250).tolist()),
        hair=_pick(c.hair, rng, 8.0), long_hair=bool(rng.random() < c.p_long_hair),
        upper=_garment(c, c.upper, rng, True), lower=_garment(c, c.lower, rng, False),
        long_sleeve=bool(long_sleeve), coat=float(rng.uniform(0.1, 0.22)) if coat else 0.0,
        legs=legs, shoes=_pick(c.shoes, rng, 10.0), bag=bag,
        bag_colour=_pick(c.lower, rng, 16.0), bag_side=int(rng.choice([-1, 1])),
        hat=hat, hat_colour=_pick(c.upper, rng, 14.0))
    ident.ir = _ir_levels(ident, rng)
    return ident


_MUTATIONS = ("shoes", "bag", "hat", "pattern", "hair", "lower", "sleeve", "upper_shade", "shape")


def near_duplicate(base: Identity, c: Clothing, rng: np.random.Generator) -> Identity:
    """A copy of ``base`` with one or two attributes changed: a hard negative."""
    ident = copy.deepcopy(base)
    fresh = sample_identity(c, rng)
    for m in rng.choice(_MUTATIONS, size=int(rng.integers(1, 3)), replace=False):
        if m == "shoes":
            ident.shoes = fresh.shoes
        elif m == "bag":
            ident.bag = fresh.bag if fresh.bag != ident.bag else ("none" if ident.bag != "none" else "backpack")
            ident.bag_colour = fresh.bag_colour
        elif m == "hat":
            if ident.hat != "none":
                ident.hat = "none"
            elif rng.random() < min(1.0, 3 * c.p_hat):  # keep the domain's hat rate roughly
                ident.hat = "beanie" if rng.random() < c.p_beanie else "cap"
            ident.hat_colour = fresh.hat_colour
        elif m == "pattern":
            ident.upper = fresh.upper if fresh.upper.pattern != "plain" else Garment(ident.upper.colour)
            ident.upper.colour = base.upper.colour
        elif m == "hair":
            ident.hair, ident.long_hair = fresh.hair, not ident.long_hair
        elif m == "lower":
            ident.lower, ident.legs = fresh.lower, fresh.legs
        elif m == "sleeve":
            ident.long_sleeve = not ident.long_sleeve
            ident.coat = 0.0
        elif m == "upper_shade":
            ident.upper.colour = tuple(np.clip(np.add(ident.upper.colour, rng.normal(0, 30, 3)), 5, 250).tolist())
        else:
            ident.shape = fresh.shape
    ident.ir = _ir_levels(ident, rng)
    return ident


def sample_identities(c: Clothing, n: int, rng: np.random.Generator) -> list[Identity]:
    """``n`` identities; about ``p_near_duplicate`` of them copy an earlier one closely."""
    out: list[Identity] = []
    for i in range(n):
        if i > 0 and rng.random() < c.p_near_duplicate:
            parent = int(rng.integers(0, i))
            ident = near_duplicate(out[parent], c, rng)
            ident.parent = parent
        else:
            ident = sample_identity(c, rng)
        out.append(ident)
    return out
