"""`reid synth`: a synthetic person re-ID dataset in a real layout, the embedded default.

Identities (body shape, skin, hair, clothing colours and patterns, sleeves, legs, shoes,
bags, hats; near duplicates as hard negatives) walk through cameras that each have their
own scene and style; domain presets differ in both, so cross-domain transfer loses
accuracy as Market-1501 -> DukeMTMC-reID does. Bodies are rendered from a 3-D skeleton,
so the 17 COCO keypoints written to ``pose.h5`` are exactly on the person.

    >>> from reidcli.data.synth import synthesize
    >>> synthesize("data/market", domain="market", ids=16, images_per_id=6)  # doctest: +SKIP
"""

from reidcli.data.synth.generate import DEFAULT_IDS, DEFAULT_IMAGES_PER_ID, build_context, synthesize
from reidcli.data.synth.presets import PRESETS, get_preset

DOMAINS = tuple(PRESETS)

__all__ = ["synthesize", "build_context", "get_preset", "PRESETS", "DOMAINS",
           "DEFAULT_IDS", "DEFAULT_IMAGES_PER_ID"]
