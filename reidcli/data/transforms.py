"""Image transforms for training and inference (torchvision ``transforms.v2``).

Images arrive as RGB ``uint8`` arrays [H, W, 3] from OpenCV decoding. Training follows the
re-ID recipe shared by BoT (Luo et al., CVPR-W 2019), torchreid and fast-reid: resize,
random horizontal flip, pad + random crop (or a random resized crop, LSTM-UDA 2021:
scale [0.64, 1], aspect [2, 3]), optional colour jitter, normalisation, then random erasing
(Zhong et al., AAAI 2020) on the normalised tensor.

One resize everywhere a network sees an image (training, ``reid features``, the pose and
StarGAN inference paths): `resize_uint8`, bilinear with antialiasing on uint8 (torchvision's
``resize(antialias=True)``, the filter of PIL's ``Image.resize(BILINEAR)``), so training and
extraction see the same pixels. Inference resizes in the loader worker and leaves float
conversion and normalisation to `Normalizer`, which runs on the model's device, so the
loader ships a quarter of the bytes and the GPU does the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Optional, Sequence

import numpy as np

from reidcli.io.ckpt import IMAGENET_MEAN, IMAGENET_STD
from reidcli.utils.params import MAX_IMAGE_SIDE, Interval, Satisfies, check_params

_PROBABILITY = [Interval(float, 0, 1)]


def _pair(v) -> bool:
    """Two finite real numbers (a tuple, or a list from a TOML config)."""
    import math
    import numbers

    return (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) for x in v))


@dataclass
class AugmentConfig:
    """Training augmentation switches (each a CLI flag of ``reid pretrain``/``finetune``).

    Attributes:
        height, width: network input size.
        flip: probability of a horizontal flip.
        pad: pixels of padding before a random crop back to (height, width); 0 disables.
        resized_crop: use RandomResizedCrop(scale, ratio) instead of pad + crop.
        crop_scale, crop_ratio: RandomResizedCrop ranges (ratio = height / width here).
        jitter: colour-jitter strength (brightness/contrast/saturation; hue = jitter / 4).
        erasing: probability of random erasing.
    """

    height: int = 256
    width: int = 128
    flip: float = 0.5
    pad: int = 10
    resized_crop: bool = False
    crop_scale: tuple[float, float] = (0.64, 1.0)
    crop_ratio: tuple[float, float] = (2.0, 3.0)
    jitter: float = 0.0
    erasing: float = 0.5

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "height": [Interval(int, 8, MAX_IMAGE_SIDE)], "width": [Interval(int, 8, MAX_IMAGE_SIDE)],
        "flip": _PROBABILITY, "erasing": _PROBABILITY, "pad": [Interval(int, 0, None)],
        "resized_crop": ["boolean"], "jitter": [Interval(float, 0, 1)],
        "crop_scale": [Satisfies(lambda v: _pair(v) and 0 < v[0] <= v[1] <= 1, "two floats 0 < lo <= hi <= 1")],
        "crop_ratio": [Satisfies(lambda v: _pair(v) and 0 < v[0] <= v[1], "two floats 0 < lo <= hi")],
    }

    def validate(self) -> "AugmentConfig":
        """Check every field against ``CONSTRAINTS`` (`ParamError` naming the field)."""
        check_params(self, self.CONSTRAINTS)
        return self


def to_tensor_uint8(img: np.ndarray):
    """[H, W, 3] uint8 array -> [3, H, W] uint8 tensor (no copy)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


RESIZE_NAME = "bilinear with antialiasing (torchvision resize(antialias=True), as PIL BILINEAR)"


def resize_uint8(x, height: int, width: int):
    """The project's one resize: uint8 [..., 3, H, W] tensor -> [..., 3, height, width], bilinear
    with antialiasing when shrinking (torchvision ``resize(antialias=True)``); the input itself
    when it already has that size."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(x, [int(height), int(width)], antialias=True)


class TrainTransform:
    """The training pipeline as ``tail(head(img))``: ``head`` is deterministic (uint8 RGB
    array -> uint8 [3, h, w] tensor: to a tensor, then the resize to the input size unless
    the crop is a random resized one), ``tail`` holds every random op and normalises.
    ``cache_size`` is the (height, width) ``head`` outputs, None when it keeps the decoded
    size. `reidcli.data.cache` stores ``head`` outputs (`split`)."""

    def __init__(self, head: Callable, tail: Callable, cache_size: Optional[tuple[int, int]]):
        self.head, self.tail, self.cache_size = head, tail, cache_size

    def split(self) -> tuple[Callable, Callable]:
        return self.head, self.tail

    def __call__(self, img: np.ndarray):
        return self.tail(self.head(img))


def build_train_transform(cfg: AugmentConfig, mean: Sequence[float] = IMAGENET_MEAN,
                          std: Sequence[float] = IMAGENET_STD) -> TrainTransform:
    """Compose the training pipeline: uint8 [H, W, 3] array -> normalised float [3, h, w]."""
    from torchvision.transforms import v2

    cfg.validate()
    size = (cfg.height, cfg.width)
    head: list = [v2.Lambda(to_tensor_uint8)]
    ops: list = []
    if cfg.resized_crop:
        # torchvision's ratio is width / height; the papers state height / width.
        ratio = (1.0 / cfg.crop_ratio[1], 1.0 / cfg.crop_ratio[0])
        ops.append(v2.RandomResizedCrop(size, scale=cfg.crop_scale, ratio=ratio, antialias=True))
    else:
        head = [ResizeUint8(*size)]
    if cfg.flip > 0:
        ops.append(v2.RandomHorizontalFlip(cfg.flip))
    if cfg.pad > 0 and not cfg.resized_crop:
        ops += [v2.Pad(cfg.pad), v2.RandomCrop(size)]
    return TrainTransform(v2.Compose(head), v2.Compose(ops + photometric_tail(cfg, mean, std)),
                          None if cfg.resized_crop else size)


def photometric_tail(cfg: "AugmentConfig", mean: Sequence[float], std: Sequence[float]) -> list:
    """The ops after the geometry: colour jitter, float + normalise, random erasing."""
    import torch
    from torchvision.transforms import v2

    ops: list = []
    if cfg.jitter > 0:
        j = cfg.jitter
        ops.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j, hue=min(0.5, j / 4)))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if cfg.erasing > 0:
        ops.append(v2.RandomErasing(p=cfg.erasing, value=0))
    return ops


class ResizeUint8:
    """uint8 [H, W, 3] array -> uint8 [3, height, width] tensor through `resize_uint8` (the
    training head and the inference transform)."""

    def __init__(self, height: int, width: int):
        self.height, self.width = int(height), int(width)

    def __call__(self, img: np.ndarray):
        return resize_uint8(to_tensor_uint8(img), self.height, self.width)


def resize_array(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """`resize_uint8` on a uint8 [H, W, 3] array, returning an array."""
    if img.shape[:2] == (height, width):
        return img
    return resize_uint8(to_tensor_uint8(img), height, width).permute(1, 2, 0).contiguous().numpy()


class Normalizer:
    """uint8 [N, 3, H, W] batch -> normalised float on the target device (fused, in place)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], device, dtype=None):
        import torch

        self.dtype = dtype or torch.float32
        self.mean = torch.tensor(mean, device=device, dtype=self.dtype).view(1, 3, 1, 1) * 255.0
        self.scale = 1.0 / (torch.tensor(std, device=device, dtype=self.dtype).view(1, 3, 1, 1) * 255.0)
        self.device = device

    def __call__(self, batch):
        x = batch.to(self.device, non_blocking=True).to(self.dtype)
        return x.sub_(self.mean).mul_(self.scale)
