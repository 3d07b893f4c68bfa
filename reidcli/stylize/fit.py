"""`fit_style`: learn every camera's style from a dataset's training split."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from reidcli.data.images import read_image
from reidcli.data.records import Dataset
from reidcli.stylize.cameras import cameras_of
from reidcli.stylize.color import CameraStats, rgb_to_lab
from reidcli.stylize.model import StyleModel, save_style_model
from reidcli.stylize.options import ColorFit, StarGANInput
from reidcli.utils.errors import InputError
from reidcli.utils.params import MAX_IMAGE_SIDE, SEED, Interval, Options, Satisfies, check_params, reject_given
from reidcli.utils.progress import track

log = logging.getLogger(__name__)

METHODS = ("color", "stargan")
CONSTRAINTS = {
    "method": [Options(set(METHODS))],
    "max_images": [Interval(int, 1, None)],
    "max_pixels": [Interval(int, 16, None)],
    "seed": SEED,
    "image_size": [Satisfies(lambda s: len(s) == 2 and all(isinstance(x, int) and 1 <= x <= MAX_IMAGE_SIDE for x in s),
                             f"(height, width), each an int in [1, {MAX_IMAGE_SIDE}]")],
}
# the settings of one method only (None: not given, these defaults); given to the other, refused
COLOR_DEFAULTS = dataclasses.asdict(ColorFit())
STARGAN_DEFAULTS = dataclasses.asdict(StarGANInput())


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> (256, 128)."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"--image-size {text!r}: expected HEIGHTxWIDTH, e.g. 256x128")
    return int(parts[0]), int(parts[1])


def fit_color(ds: Dataset, split: str = "train", *, max_images: int = 400, max_pixels: int = 65536,
              seed: int = 0) -> dict[int, CameraStats]:
    """Per camera: the Lab pixels of up to ``max_images`` of its images (seeded choice),
    subsampled to ``max_pixels``, as `CameraStats`."""
    rng = np.random.default_rng(seed)
    stats = {}
    for cam, recs in track(cameras_of(ds, split).items(), "fit colour statistics"):
        pick = sorted(rng.choice(len(recs), size=min(max_images, len(recs)), replace=False).tolist())
        lab = np.concatenate([rgb_to_lab(read_image(ds.abspath(recs[i]))).reshape(-1, 3) for i in pick])
        if len(lab) > max_pixels:
            lab = lab[np.sort(rng.choice(len(lab), size=max_pixels, replace=False))]
        stats[cam] = CameraStats.from_pixels(lab)
    return stats


def _with_recipe(recipe: str, method: Optional[str], options: Optional[Mapping[str, Any]],
                 train: Optional[Mapping[str, Any]]) -> tuple[str, dict, dict]:
    """``recipe``'s ``stylize`` settings under the given ones, split into (method,
    `StarGANOptions` fields, `TrainConfig` fields)."""
    from reidcli.recipes import with_recipe
    from reidcli.stylize.options import StarGANOptions

    merged = with_recipe(recipe, "stylize", {"method": method, **(options or {}), **(train or {})})
    names = set(StarGANOptions.field_names())
    opts = {k: v for k, v in merged.items() if k in names}
    return merged.pop("method"), opts, {k: v for k, v in merged.items() if k not in names and k != "method"}


def fit_style(data: str | os.PathLike, output: str | os.PathLike, *, method: Optional[str] = None,
              format: Optional[str] = None, split: str = "train", max_images: Optional[int] = None,
              max_pixels: Optional[int] = None, seed: int = 0, image_size: Optional[tuple[int, int]] = None,
              options: Optional[Mapping[str, Any]] = None, train: Optional[Mapping[str, Any]] = None,
              resume: bool = False, device: str = "auto", cam_regex: Optional[str] = None,
              recipe: Optional[str] = None) -> Path:
    """Fit a camera-style model on ``split`` of ``data`` and write it to ``output``.

    Args:
        data: a dataset folder (layout auto-detected unless ``format``).
        cam_regex: folder / unlabelled layouts: each image's camera (the styles learnt) is
            this regex's first group matched against its relative path.
        output: the ``.pt`` file to write (atomically).
        method: ``color`` (training-free, `reidcli.stylize.color`) or ``stargan`` (trained
            through the engine, `reidcli.stylize.train.fit_stargan`); None: the recipe's, else color.
        max_images, max_pixels: ``color`` only: images read and pixels kept per camera
            (None: `COLOR_DEFAULTS`).
        seed: the image and pixel choice (``color``) or the training seed.
        image_size: ``stargan`` only: (height, width) the model works at (None: `STARGAN_DEFAULTS`).
        options: ``stargan``: fields of `StarGANOptions`.
        train: ``stargan``: `TrainConfig` fields over `STARGAN_TRAIN` (``epochs``, ``p``, ...).
        resume, device: ``stargan``: continue from ``output``; auto | cpu | cuda | cuda:N.
        recipe: a paper recipe's ``stylize`` settings (`reidcli.recipes`; ``lstm-camstyle``:
            StarGAN's published schedule) under the given ``method``, ``options`` and ``train``.
    """
    from reidcli.data.layouts import load_dataset
    from reidcli.io.h5 import make_provenance

    if recipe is not None:
        method, options, train = _with_recipe(recipe, method, options, train)
    method = method or "color"
    given = {"max_images": max_images, "max_pixels": max_pixels,
             "image_size": tuple(image_size) if image_size is not None else None}
    check_params({"method": method, "seed": seed, **{k: v for k, v in given.items() if v is not None}}, CONSTRAINTS)
    reject_given(given, STARGAN_DEFAULTS, applies=method == "stargan",
                 what=f"to --method {method} (it works at each image's own size); it is --method stargan's input size")
    reject_given(given, COLOR_DEFAULTS, applies=method == "color",
                 what=f"to --method {method} (it trains on every image of the split); it is a --method color setting")
    given = {k: COLOR_DEFAULTS.get(k, STARGAN_DEFAULTS.get(k)) if v is None else v for k, v in given.items()}
    max_images, max_pixels, image_size = given["max_images"], given["max_pixels"], given["image_size"]
    if method == "stargan":
        from reidcli.stylize.train import fit_stargan, stargan_train_config

        return fit_stargan(data, output, options=options, train=stargan_train_config(**{"seed": seed, **(train or {})}),
                           image_size=image_size, format=format, split=split, resume=resume, device=device,
                           cam_regex=cam_regex)
    if options or train or resume:
        raise InputError("--method color takes no training options (epochs, batch size, --resume, "
                         "StarGAN weights); drop them or use --method stargan")
    ds = load_dataset(data, format, cam_regex=cam_regex)
    stats = fit_color(ds, split, max_images=max_images, max_pixels=max_pixels, seed=seed)
    prov = make_provenance([], seed=seed, params={"method": method, "data": str(data), "split": split,
                                                  "max_images": max_images, "max_pixels": max_pixels})
    model = StyleModel(method, sorted(stats), tuple(image_size), stats=stats,
                       config={"format": ds.format, "split": split}, provenance=prov)
    log.info("fitted the colour style of %d cameras of %s", len(stats), ds.root)
    return save_style_model(output, model)
