"""`fit_stargan`: train the camera-style StarGAN (`reidcli.stylize.stargan`) through the
one training engine (`reidcli.train.engine`; the method plugged into it, one critic or
generator step, is `reidcli.stylize.trainer.StarGAN`), so the progress bar, JSONL log,
``--resume``, AMP and DDP are the engine's; `SampleSheets` writes a PNG grid every N steps
(real images in rows; the real image, then its style in every camera, in columns).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from reidcli.stylize.cameras import cameras_of
from reidcli.stylize.options import STARGAN_TRAIN, StarGANOptions
from reidcli.train.config import TrainConfig
from reidcli.train.hooks import HookBase
from reidcli.utils.errors import InputError
from reidcli.utils.params import MAX_IMAGE_SIDE

log = logging.getLogger(__name__)
HALF = (0.5, 0.5, 0.5)  # images in [-1, 1], as StarGAN's tanh output
RESUME_OVERRIDES = ("epochs", "max_iters", "stop_after", "workers", "log_every")



def stargan_train_config(**overrides: Any) -> TrainConfig:
    """`TrainConfig` with StarGAN's defaults (``STARGAN_TRAIN``), then ``overrides``."""
    return TrainConfig(**{**STARGAN_TRAIN, **overrides}).validate()


def sheet(rows: np.ndarray) -> np.ndarray:
    """(R, Ccols, 3, H, W) floats in [-1, 1] -> one uint8 RGB grid image, 2-pixel gaps."""
    r, c, _, h, w = rows.shape
    grid = np.full((r * (h + 2), c * (w + 2), 3), 255, dtype=np.uint8)
    img = np.clip((rows.transpose(0, 1, 3, 4, 2) + 1) * 127.5, 0, 255).round().astype(np.uint8)
    for i in range(r):
        for j in range(c):
            grid[i * (h + 2):i * (h + 2) + h, j * (w + 2):j * (w + 2) + w] = img[i, j]
    return grid


class SampleSheets(HookBase):
    """Every ``every`` steps (and after training), ``<folder>/step_<n>.png`` on rank 0."""

    def __init__(self, images, folder: Path, every: int):
        self.images, self.folder, self.every = images, Path(folder), every

    def after_step(self) -> None:
        if self.every and self.engine.global_it % self.every == 0:
            self.write()

    def after_train(self) -> None:
        self.write()

    def write(self) -> Optional[Path]:
        import torch

        from reidcli.stylize.apply import write_image

        e = self.engine
        if not e.dist.is_main:
            return None
        G = e.method.nets["model"]
        x = self.images.to(e.device)
        with torch.no_grad():
            cols = [x] + [G(x, torch.full((x.shape[0],), c, device=e.device)) for c in range(G.num_cams)]
        grid = sheet(torch.stack(cols, 1).float().cpu().numpy())
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step_{e.global_it:07d}.png"
        write_image(path, grid)
        return path


def _dataset(data, format, split: str, size: tuple[int, int], cam_regex=None):
    from reidcli.data.layouts import load_dataset
    from reidcli.data.loader import ImageDataset
    from reidcli.data.transforms import AugmentConfig, build_train_transform

    ds = load_dataset(data, format, cam_regex=cam_regex)
    cams = sorted(cameras_of(ds, split))
    recs = ds.split(split)
    aug = AugmentConfig(height=size[0], width=size[1], flip=0.5, pad=0, erasing=0.0)
    labels = [cams.index(r.camid) for r in recs]
    return ds, cams, ImageDataset(ds.root, recs, build_train_transform(aug, HALF, HALF), labels=labels, size=size)


def _fixed_images(ds, recs, size: tuple[int, int], n: int = 4):
    import torch

    from reidcli.data.images import read_image
    from reidcli.data.transforms import ResizeUint8

    pick = np.linspace(0, len(recs) - 1, min(n, len(recs))).round().astype(int)
    resize = ResizeUint8(*size)
    x = torch.stack([resize(read_image(ds.abspath(recs[i]))) for i in pick]).float()
    return x / 127.5 - 1


def _resume(out: Path, train: TrainConfig, options: StarGANOptions):
    from reidcli.io.ckpt import load_checkpoint

    if not out.exists():
        log.warning("--resume: %s does not exist yet; starting from scratch", out)
        return None, train, options
    ck = load_checkpoint(out, kind="stylize")
    ts = ck.get("train_state")
    if not ts:
        raise InputError(f"{out} holds no training state; cannot --resume, drop --resume to start over")
    merged = TrainConfig.from_dict({**ts["config"], **{k: getattr(train, k) for k in RESUME_OVERRIDES}})
    saved = {k: v for k, v in ts["options"].items() if k in StarGANOptions.field_names()}
    return ck, merged.validate(), StarGANOptions(**saved).validate()


def fit_stargan(data: str | os.PathLike, output: str | os.PathLike, *,
                options: StarGANOptions | Mapping[str, Any] | None = None, train: Optional[TrainConfig] = None,
                image_size: tuple[int, int] = (256, 128), format: Optional[str] = None, split: str = "train",
                resume: bool = False, device: str = "auto", cam_regex: Optional[str] = None) -> Path:
    """Train a camera-conditioned StarGAN on ``split`` of ``data``; write ``output``.

    Args:
        options: `StarGANOptions` or a dict of its fields (None: the paper's settings).
        train: engine settings (default `stargan_train_config()`; batch = ``p * k``).
        image_size: (height, width), multiples of 4 (the generator's two stride-2 levels).
        resume: continue from ``output`` (its config; epochs and budgets may change).
        device: auto | cpu | cuda | cuda:N.
        format, cam_regex: the dataset layout (None: detected); folder / unlabelled layouts:
            each image's camera is this regex's first group matched against its relative path.
    Sample sheets go to ``<output stem>.samples/`` every ``options.sample_every`` steps, the
    log to ``<output stem>.log.jsonl``; an ``output`` that is a device node or a FIFO gets
    neither and is written once, at the end.
    """
    import torch

    from reidcli.data.records import fingerprint
    from reidcli.io.atomic import side_file
    from reidcli.io.h5 import make_provenance
    from reidcli.train import dist as D
    from reidcli.train.engine import Engine
    from reidcli.stylize.trainer import StarGAN
    from reidcli.train.methods import method_options
    from reidcli.train.methods.base import EngineContext
    from reidcli.train.pretrain import check_resumed_data
    from reidcli.utils.device import resolve_device
    from reidcli.utils.seed import seed_everything

    out = Path(output)
    h, w = int(image_size[0]), int(image_size[1])
    if h < 8 or w < 8 or h % 4 or w % 4 or max(h, w) > MAX_IMAGE_SIDE:
        raise InputError(f"--image-size {h}x{w}: height and width must be multiples of 4 in [8, {MAX_IMAGE_SIDE}]")
    opts = method_options("stargan", options)
    train = (train or stargan_train_config()).validate()
    ck, train, opts = _resume(out, train, opts) if resume else (None, train, opts)
    if ck is not None and list(ck["input_size"]) != [h, w]:
        raise InputError(f"--resume: {out} was trained at {ck['input_size'][0]}x{ck['input_size'][1]}, "
                         f"not {h}x{w}; pass its --image-size")
    dev = D.device_for(D.from_env(), resolve_device(device))
    info = D.init(dev)
    try:
        seed_everything(train.seed, train.deterministic)
        ds, cams, images = _dataset(data, format, split, (h, w), cam_regex)
        train_data = {"data": fingerprint(ds.root, images.records)}
        if ck is not None:
            check_resumed_data(out, ck, train_data, {"data": "DATA"})
        ctx = EngineContext(cfg=train, device=dev, dist=info, num_classes=len(cams), data={"images": images},
                            facts={"num_cams": len(cams), "image_size": [h, w]})
        mcfg = {"kind": "stylize", "method": "stargan", "cameras": cams, "num_cams": len(cams),
                "g_conv_dim": opts.g_conv_dim, "g_repeat": opts.g_repeat, "format": ds.format, "split": split}
        meta = {"input_size": [h, w], "pixel_mean": HALF, "pixel_std": HALF, "model_config": mcfg,
                "extra": {"kind": "stylize", "train_data": train_data},
                "provenance": make_provenance([], seed=train.seed, params={
                    "method": "stargan", "data": str(ds.root), "train": train.to_dict(), "options": opts.to_dict()})}
        folder = side_file(out, ".samples")  # None for -o /dev/null or a FIFO: no side files
        hooks = [] if folder is None else [SampleSheets(_fixed_images(ds, ds.split(split), (h, w)), folder,
                                                        opts.sample_every)]
        engine = Engine(StarGAN(opts), train, out=out, meta=meta, ctx=ctx, hooks=hooks)
        torch.backends.cudnn.benchmark = not train.deterministic
        with warnings.catch_warnings():  # the first steps are critic steps: G's scheduler steps first
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            engine.fit(resume=ck)
    finally:
        D.shutdown(info)
    return out
