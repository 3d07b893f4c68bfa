"""`StarGANOptions`: the settings of ``reid stylize fit --method stargan`` (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from reidcli.train.config import TrainConfig
from reidcli.train.methods.options import MethodOptions
from reidcli.utils.params import Interval, Options, Satisfies

_WEIGHT = [Interval(float, 0, None)]
# StarGAN's optimisation (Choi et al. 2018): Adam 1e-4, no weight decay, batch 16; the
# `TrainConfig` fields of ``reid stylize fit --method stargan`` that differ from pretrain's.
# An engine step is one critic or one generator step, so an epoch of 1,200 steps holds
# 1,000 critic iterations (n_critic 5); 20 epochs are a tenth of the published 200,000
# (the CPU-sized default; `reidcli.recipes` 'lstm-camstyle' sets the published 200 epochs).
# The schedule here is the engine's (constant): StarGAN's linear decay is
# `StarGANOptions.lr_decay`, applied by the method to both optimisers.
@dataclass
class StarGANTrainConfig(TrainConfig):
    """`TrainConfig` with StarGAN's defaults (above); ``p`` is the batch (``k`` 1)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: list[int] = field(default_factory=list)
    warmup_epochs: float = 0.0
    p: int = 16
    k: int = 1
    images_per_bn: int = 0
    sync_bn: bool = False
    epochs: int = 20
    iters_per_epoch: int = 1200


STARGAN_TRAIN = {name: getattr(StarGANTrainConfig(), name) for name in StarGANTrainConfig.__annotations__}


@dataclass(frozen=True)
class ColorFit:
    """``reid stylize fit --method color``'s reading budget: images read and pixels kept per
    camera."""

    max_images: int = 400
    max_pixels: int = 65536


@dataclass(frozen=True)
class StarGANInput:
    """``--method stargan``'s input size (height, width), StarGAN's re-ID setting."""

    image_size: tuple[int, int] = (256, 128)
G_BATCHES = ("critic", "new")  # StarGANOptions.g_batch
TARGET_CAMERAS = ("permute", "uniform")  # StarGANOptions.target_cameras


def _betas(v) -> bool:
    return (isinstance(v, (tuple, list)) and len(v) == 2
            and all(isinstance(b, float) and 0 <= b < 1 for b in v))


@dataclass
class StarGANOptions(MethodOptions):
    """StarGAN (Choi et al., "StarGAN: Unified Generative Adversarial Networks for
    Multi-Domain Image-to-Image Translation", CVPR 2018), the cameras as domains (LSTM-UDA 2021):
    WGAN-GP adversarial loss (Gulrajani et al. 2017) with ``lambda_gp``, the camera-
    classification loss (eq. 2-3) with ``lambda_cls`` and the cycle reconstruction loss
    (eq. 4) with ``lambda_rec``; the discriminator takes ``n_critic`` steps per generator
    step; Adam ``betas``. ``g_conv_dim`` / ``d_conv_dim`` are the first
    layers' widths, ``g_repeat`` the residual blocks, ``d_repeat`` the discriminator's
    stride-2 layers (0 = as many as the image size allows, at most 6).

    The loop, as the published code (yunjey/stargan ``solver.py``): ``lr_decay`` is the
    final fraction of the run's critic iterations over which both learning rates fall
    linearly to 0 (0.5: the last 100,000 of 200,000; 0 = constant). ``g_batch``: the
    generator step takes the images and target cameras of the critic step before it
    ('critic', the code) or a new batch with new targets ('new'). ``target_cameras``: each
    image's target camera is a random permutation of the batch's own cameras ('permute',
    the code) or drawn uniformly over the cameras ('uniform')."""

    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    n_critic: int = 5
    betas: tuple[float, float] = (0.5, 0.999)
    g_conv_dim: int = 64
    d_conv_dim: int = 64
    g_repeat: int = 6
    d_repeat: int = 0
    sample_every: int = 500
    lr_decay: float = 0.5
    g_batch: str = "critic"
    target_cameras: str = "permute"

    CONSTRAINTS: ClassVar[dict[str, list]] = {
        "lambda_cls": _WEIGHT, "lambda_rec": _WEIGHT, "lambda_gp": _WEIGHT,
        "n_critic": [Interval(int, 1, None)], "betas": [Satisfies(_betas, "two floats in [0, 1), e.g. (0.5, 0.999)")],
        "g_conv_dim": [Interval(int, 1, None)],
        "d_conv_dim": [Interval(int, 1, None)], "g_repeat": [Interval(int, 0, None)],
        "d_repeat": [Interval(int, 0, 6)], "sample_every": [Interval(int, 0, None)],
        "lr_decay": [Interval(float, 0, 1)], "g_batch": [Options(G_BATCHES)],
        "target_cameras": [Options(TARGET_CAMERAS)],
    }
