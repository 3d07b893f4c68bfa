"""Domain presets: what the people wear and what the cameras look like in each synthetic domain.

A preset fixes two distributions, so that two presets differ the way real re-ID datasets
differ (Market-1501 -> DukeMTMC-reID loses ~60% of its mAP without adaptation):

* the clothing distribution of the identities (colour palettes, sleeve and leg length,
  coats, patterns, bags, hats): ``market`` is a summer campus (bright colours, short
  sleeves, shorts and skirts), ``duke`` a winter campus (dark coats, long trousers, more
  bags and hats), ``msmt`` a mixed spring crowd over 15 cameras and three times of day,
  ``sysu`` an indoor/outdoor mix with two near-infrared cameras, ``regdb`` a dual camera
  (visible + far-infrared thermal) at one spot, each image taken as a visible/thermal pair;
* the camera styles (scene, illumination, colour cast, noise, blur, resolution, JPEG).

Colours are RGB in 0..255. Every range is ``(low, high)`` for a uniform draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reidcli.utils.errors import ConfigError

Palette = tuple[tuple[tuple[int, int, int], float], ...]  # ((rgb, weight), ...)


@dataclass(frozen=True)
class Clothing:
    """Distribution of identities' appearance in one domain."""

    upper: Palette
    lower: Palette
    shoes: Palette
    hair: Palette
    p_long_sleeve: float
    p_coat: float  # a coat: long sleeves and a hem below the hips
    p_long_trousers: float
    p_skirt: float  # of the rest; the remainder wear shorts
    patterns: dict[str, float]  # plain / stripes / checks / logo / colorblock
    p_backpack: float
    p_handbag: float
    p_hat: float
    p_beanie: float  # share of hats that are beanies (the rest are caps)
    p_long_hair: float
    colour_jitter: float = 14.0  # per-identity Gaussian jitter of palette colours
    p_near_duplicate: float = 0.3  # identities copied from another with 1-2 changes


@dataclass(frozen=True)
class CameraRanges:
    """Ranges the per-camera styles are drawn from."""

    gain: tuple[float, float]
    gamma: tuple[float, float]
    contrast: tuple[float, float]
    saturation: tuple[float, float]
    cast: tuple[float, float, float]  # mean log-gain per RGB channel
    cast_spread: float  # per-camera spread of the cast around that mean
    noise: tuple[float, float]  # Gaussian sigma in 0..255 units
    blur: tuple[float, float]  # Gaussian sigma in output pixels
    resolution: tuple[float, float]  # down-scale factor before up-scaling back
    jpeg: tuple[int, int]
    vignette: tuple[float, float]
    p_occlusion: float  # per image
    p_motion_blur: float  # per image


@dataclass(frozen=True)
class Scenery:
    """Background scene ingredients of a domain."""

    wall: Palette
    ground: Palette
    foliage: Palette
    p_indoor: float  # share of cameras that are indoor
    p_snow: float  # share of outdoor cameras with snow on the ground
    p_trees: float


@dataclass(frozen=True)
class Preset:
    name: str
    layout: str  # market1501 | dukemtmc | msmt17 | sysumm01 | regdb
    cams: int
    clothing: Clothing
    camera: CameraRanges
    scenery: Scenery
    infrared_cams: tuple[int, ...] = ()  # 1-based camera numbers
    indoor_cams: tuple[int, ...] = ()  # forced indoor (1-based), else drawn with p_indoor
    times_of_day: tuple[str, ...] = ()  # MSMT17-style illumination per tracklet
    max_cams_per_id: int = 6
    meta: dict = field(default_factory=dict)
    thermal: bool = False  # the infrared cameras are far-infrared (thermal emission), not NIR
    images_per_id: int = 12  # default images per identity (`synthesize`)


def _pal(*items: tuple[tuple[int, int, int], float]) -> Palette:
    return tuple(items)


BLACK, WHITE, GREY, DGREY = (25, 25, 28), (232, 232, 228), (128, 128, 130), (62, 62, 66)
NAVY, BROWN, BEIGE, DENIM = (28, 38, 78), (92, 62, 40), (200, 182, 150), (58, 84, 128)

SHOES = _pal((BLACK, 4), (WHITE, 3), (GREY, 1), (BROWN, 1.5), ((170, 40, 40), 0.4), ((40, 60, 140), 0.4))
HAIR = _pal(((18, 16, 16), 6), ((60, 40, 28), 3), ((120, 82, 45), 1), ((200, 170, 110), 0.6),
            ((150, 150, 150), 0.4))

MARKET = Preset(
    name="market", layout="market1501", cams=6,
    clothing=Clothing(
        upper=_pal((WHITE, 4), (BLACK, 2), ((220, 40, 45), 1.6), ((245, 205, 40), 1.2),
                   ((90, 170, 230), 1.4), ((240, 140, 180), 1.2), ((60, 170, 80), 1.0),
                   ((245, 130, 40), 0.8), ((150, 90, 190), 0.7), (GREY, 1.2), (NAVY, 0.6)),
        lower=_pal((BLACK, 3), (DENIM, 2.5), (WHITE, 1.2), (BEIGE, 1.6), (GREY, 1.2),
                   ((90, 150, 210), 0.8), ((230, 120, 150), 0.5), ((110, 140, 70), 0.5)),
        shoes=SHOES, hair=HAIR,
        p_long_sleeve=0.25, p_coat=0.02, p_long_trousers=0.5, p_skirt=0.25,
        patterns={"plain": 0.58, "stripes": 0.12, "checks": 0.08, "logo": 0.16, "colorblock": 0.06},
        p_backpack=0.3, p_handbag=0.2, p_hat=0.08, p_beanie=0.0, p_long_hair=0.35),
    camera=CameraRanges(
        gain=(0.9, 1.1), gamma=(0.9, 1.05), contrast=(0.95, 1.15), saturation=(1.0, 1.25),
        cast=(0.06, 0.02, -0.06), cast_spread=0.06, noise=(1.5, 5.0), blur=(0.3, 0.8),
        resolution=(0.6, 1.0), jpeg=(70, 95), vignette=(0.0, 0.15),
        p_occlusion=0.15, p_motion_blur=0.15),
    scenery=Scenery(
        wall=_pal(((225, 215, 195), 3), ((190, 95, 70), 1.5), ((235, 235, 235), 2), ((170, 160, 150), 1)),
        ground=_pal(((190, 185, 175), 3), ((165, 150, 130), 2), ((120, 150, 80), 1.2)),
        foliage=_pal(((60, 130, 50), 3), ((90, 150, 60), 2)),
        p_indoor=0.0, p_snow=0.0, p_trees=0.7),
    max_cams_per_id=6,
)

DUKE = Preset(
    name="duke", layout="dukemtmc", cams=8,
    clothing=Clothing(
        upper=_pal((BLACK, 5), (NAVY, 2.5), (DGREY, 2.5), (BROWN, 1.5), ((70, 80, 55), 1.0),
                   ((100, 30, 35), 1.0), ((40, 70, 60), 0.8), (BEIGE, 0.8), (WHITE, 0.6),
                   ((150, 40, 40), 0.4)),
        lower=_pal((BLACK, 5), (DENIM, 3), (DGREY, 2), (NAVY, 1.2), ((95, 80, 60), 1.0),
                   (BEIGE, 0.4)),
        shoes=SHOES, hair=HAIR,
        p_long_sleeve=0.95, p_coat=0.55, p_long_trousers=0.94, p_skirt=0.5,
        patterns={"plain": 0.7, "stripes": 0.06, "checks": 0.08, "logo": 0.1, "colorblock": 0.06},
        p_backpack=0.5, p_handbag=0.3, p_hat=0.3, p_beanie=0.6, p_long_hair=0.3),
    camera=CameraRanges(
        gain=(0.75, 0.95), gamma=(1.0, 1.2), contrast=(0.8, 1.0), saturation=(0.6, 0.85),
        cast=(-0.05, 0.0, 0.08), cast_spread=0.05, noise=(2.0, 6.0), blur=(0.2, 0.5),
        resolution=(0.85, 1.0), jpeg=(80, 95), vignette=(0.05, 0.25),
        p_occlusion=0.3, p_motion_blur=0.1),
    scenery=Scenery(
        wall=_pal(((120, 115, 110), 3), ((90, 80, 75), 2), ((150, 140, 125), 1.5)),
        ground=_pal(((95, 95, 100), 3), ((120, 110, 95), 2)),
        foliage=_pal(((95, 80, 60), 2), ((60, 75, 55), 1)),
        p_indoor=0.0, p_snow=0.6, p_trees=0.6),
    max_cams_per_id=5,
)

MSMT = Preset(
    name="msmt", layout="msmt17", cams=15,
    clothing=Clothing(
        upper=_pal((BLACK, 4), (WHITE, 3), (GREY, 1.5), (NAVY, 1.5), ((200, 50, 50), 1.0),
                   ((230, 200, 60), 0.6), ((80, 150, 200), 1.0), ((230, 150, 170), 0.8),
                   ((70, 130, 80), 0.7), (BEIGE, 1.0), (BROWN, 0.7)),
        lower=_pal((BLACK, 4), (DENIM, 3), (GREY, 1.5), (BEIGE, 1.0), (WHITE, 0.6), (NAVY, 1.0)),
        shoes=SHOES, hair=HAIR,
        p_long_sleeve=0.7, p_coat=0.25, p_long_trousers=0.8, p_skirt=0.4,
        patterns={"plain": 0.62, "stripes": 0.1, "checks": 0.08, "logo": 0.14, "colorblock": 0.06},
        p_backpack=0.45, p_handbag=0.2, p_hat=0.12, p_beanie=0.3, p_long_hair=0.4),
    camera=CameraRanges(
        gain=(0.7, 1.25), gamma=(0.85, 1.15), contrast=(0.85, 1.15), saturation=(0.75, 1.15),
        cast=(0.0, 0.0, 0.0), cast_spread=0.08, noise=(2.0, 7.0), blur=(0.3, 0.9),
        resolution=(0.6, 1.0), jpeg=(65, 95), vignette=(0.0, 0.2),
        p_occlusion=0.25, p_motion_blur=0.15),
    scenery=Scenery(
        wall=_pal(((200, 195, 185), 2), ((150, 130, 115), 2), ((110, 115, 120), 1.5), ((210, 200, 170), 1)),
        ground=_pal(((150, 150, 150), 3), ((170, 160, 140), 2), ((200, 195, 190), 1)),
        foliage=_pal(((70, 120, 55), 2), ((100, 130, 70), 1)),
        p_indoor=0.2, p_snow=0.0, p_trees=0.5),
    indoor_cams=(13, 14, 15),
    times_of_day=("morning", "noon", "afternoon"),
    max_cams_per_id=6,
)

SYSU = Preset(
    name="sysu", layout="sysumm01", cams=6,
    clothing=Clothing(
        upper=_pal((BLACK, 3), (WHITE, 3.5), (GREY, 1.5), ((70, 110, 180), 1.2), ((200, 60, 60), 1.0),
                   ((240, 210, 80), 0.7), ((240, 160, 180), 0.8), ((80, 150, 90), 0.7), (NAVY, 0.8)),
        lower=_pal((BLACK, 3.5), (DENIM, 3), (GREY, 1.2), (BEIGE, 1.0), (WHITE, 0.6)),
        shoes=SHOES, hair=HAIR,
        p_long_sleeve=0.45, p_coat=0.08, p_long_trousers=0.7, p_skirt=0.35,
        patterns={"plain": 0.6, "stripes": 0.12, "checks": 0.08, "logo": 0.14, "colorblock": 0.06},
        p_backpack=0.4, p_handbag=0.2, p_hat=0.08, p_beanie=0.2, p_long_hair=0.4),
    camera=CameraRanges(
        gain=(0.85, 1.15), gamma=(0.9, 1.1), contrast=(0.9, 1.1), saturation=(0.85, 1.1),
        cast=(0.02, 0.0, -0.02), cast_spread=0.06, noise=(2.0, 6.0), blur=(0.3, 0.8),
        resolution=(0.6, 1.0), jpeg=(70, 95), vignette=(0.0, 0.2),
        p_occlusion=0.15, p_motion_blur=0.12),
    scenery=Scenery(
        wall=_pal(((215, 210, 200), 3), ((180, 175, 160), 2), ((160, 120, 100), 1)),
        ground=_pal(((170, 165, 160), 3), ((140, 130, 120), 2)),
        foliage=_pal(((60, 120, 60), 2),),
        p_indoor=0.0, p_snow=0.0, p_trees=0.7),
    infrared_cams=(3, 6),
    indoor_cams=(1, 2, 3),
    max_cams_per_id=6,
)

# RegDB (Nguyen et al., Sensors 2017): one dual camera (visible + thermal) at a building's
# entrance; each person walks towards and away from it; ten visible and ten thermal images
# per identity, taken in pairs. Thermal renders show emitted heat, not reflected light.
REGDB = Preset(
    name="regdb", layout="regdb", cams=2,
    clothing=SYSU.clothing,
    camera=CameraRanges(
        gain=(0.9, 1.1), gamma=(0.95, 1.05), contrast=(0.95, 1.1), saturation=(0.9, 1.1),
        cast=(0.0, 0.0, 0.0), cast_spread=0.04, noise=(2.0, 4.0), blur=(0.3, 0.6),
        resolution=(0.7, 1.0), jpeg=(80, 95), vignette=(0.0, 0.1),
        p_occlusion=0.05, p_motion_blur=0.05),
    scenery=Scenery(
        wall=_pal(((200, 195, 185), 3), ((150, 140, 130), 2)),
        ground=_pal(((150, 150, 150), 3), ((170, 160, 140), 2)),
        foliage=_pal(((70, 120, 55), 2),),
        p_indoor=0.0, p_snow=0.0, p_trees=0.4),
    infrared_cams=(2,), max_cams_per_id=2, thermal=True, images_per_id=20,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (MARKET, DUKE, MSMT, SYSU, REGDB)}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (market | duke | msmt | sysu | regdb)."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown --domain '{name}'{hint} (choices: {', '.join(PRESETS)})")
    return PRESETS[name]
