"""Pose targets for training: keypoints from a pose file, carried through augmentation.

RBNet (Yu & Piao 2024; docs/papers.md section 1) learns 17 heat-maps against Gaussians
rendered from the keypoints of every training image. This module

* matches a pose file (``reid extract-pose``, or the ground truth ``reid synth`` writes) to
  the dataset's records by relative path (`match_pose`): a file made for another dataset is
  a one-line `InputError`; images it lacks (or where no person was found) train with the
  heat-map loss masked, and their number is reported;
* applies the training augmentation of `reidcli.data.transforms.build_train_transform`
  (resize or random resized crop, horizontal flip, pad + random crop, colour jitter,
  normalisation, random erasing) to the image *and* its keypoints (`PoseTrainTransform`):
  the geometric steps move the points, a flip also swaps left and right joints;
* yields ``keypoints`` [17, 3] in network-input pixels with each item (`PoseImageDataset`);
  the training method renders the heat-maps on its device (`render_targets`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reidcli.data.loader import ImageDataset, _seeded
from reidcli.data.records import Record
from reidcli.data.transforms import AugmentConfig, photometric_tail, to_tensor_uint8
from reidcli.io.ckpt import IMAGENET_MEAN, IMAGENET_STD
from reidcli.utils.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class PoseMatch:
    """Keypoints aligned to a record list (zeros and ``has`` False where missing)."""

    keypoints: np.ndarray  # [N, 17, 3] in original-image pixels
    image_size: np.ndarray  # [N, 2] (h, w) the keypoints refer to (0 when missing)
    has: np.ndarray  # [N] bool: the pose file lists the image and found a person

    @property
    def n_missing(self) -> int:
        return int((~self.has).sum())


def match_pose(pose: str | os.PathLike, records: Sequence[Record], root: str | Path = "") -> PoseMatch:
    """Align the keypoints of ``pose`` to ``records`` by relative path.

    Raises:
        InputError: no record of the dataset is in the pose file (it was made for another
            dataset or with other relative paths).
    """
    from reidcli.io.h5 import read_pose

    pf = read_pose(pose)
    index = pf.index()
    n = len(records)
    kp = np.zeros((n, 17, 3), np.float32)
    size = np.zeros((n, 2), np.int64)
    listed = np.zeros(n, bool)
    for i, rec in enumerate(records):
        j = index.get(rec.path)
        if j is not None:
            kp[i], size[i], listed[i] = pf.keypoints[j], pf.image_size[j], True
    if n and not listed.any():
        raise InputError(f"{pose} has keypoints for none of the {n} training images of {root or 'the dataset'} "
                         f"(it lists e.g. '{pf.paths[0] if pf.paths else '-'}', the dataset "
                         f"'{records[0].path}'); run 'reid extract-pose {root or 'DATA'} -o pose.h5' on this dataset")
    has = listed & (kp[..., 2] > 0).any(axis=1)
    return PoseMatch(kp, size, has)


class PoseTrainTransform:
    """The training augmentation applied to an image and its keypoints together.

    ``__call__(img, kp)``: RGB uint8 [H, W, 3] and [17, 3] (x, y, score) in its pixels ->
    (normalised float [3, h, w], [17, 3] in network-input pixels). The random draws use
    torch's RNG, so the loader's per-sample seeds make it reproducible.
    """

    def __init__(self, cfg: AugmentConfig, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        from torchvision.transforms import v2

        self.cfg = cfg.validate()
        self.size = (cfg.height, cfg.width)
        self.tail = v2.Compose(photometric_tail(cfg, mean, std))

    def __call__(self, img: np.ndarray, kp: np.ndarray):
        import torch

        x = to_tensor_uint8(img)
        kp = np.array(kp, dtype=np.float32, copy=True)
        x, kp = self._resize(x, kp)
        if self.cfg.flip > 0 and float(torch.rand(1)) < self.cfg.flip:
            x, kp = self._flip(x, kp)
        if self.cfg.pad > 0 and not self.cfg.resized_crop:
            x, kp = self._pad_crop(x, kp)
        return self.tail(x), kp

    def _resize(self, x, kp):
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.v2 import functional as TF

        H, W = self.size
        if self.cfg.resized_crop:  # the papers' ratio is height / width, torchvision's w / h
            ratio = (1.0 / self.cfg.crop_ratio[1], 1.0 / self.cfg.crop_ratio[0])
            top, left, h, w = RandomResizedCrop.get_params(x, list(self.cfg.crop_scale), list(ratio))
            x = TF.resized_crop(x, top, left, h, w, [H, W], antialias=True)
        else:
            top, left, h, w = 0, 0, x.shape[-2], x.shape[-1]
            x = TF.resize(x, [H, W], antialias=True)
        kp[:, 0] = (kp[:, 0] - left) * (W / w)
        kp[:, 1] = (kp[:, 1] - top) * (H / h)
        return x, kp

    def _flip(self, x, kp):
        from reidcli.pose.coco import COCO17_FLIP_INDEX

        kp[:, 0] = x.shape[-1] - 1 - kp[:, 0]
        return x.flip(-1), kp[list(COCO17_FLIP_INDEX)]

    def _pad_crop(self, x, kp):
        import torch
        import torch.nn.functional as F

        p = self.cfg.pad
        H, W = self.size
        x = F.pad(x, (p, p, p, p))
        top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
        kp[:, 0] += p - left
        kp[:, 1] += p - top
        return x[:, top:top + H, left:left + W], kp


class PoseImageDataset(ImageDataset):
    """`ImageDataset` whose items also carry ``keypoints`` [17, 3] in network-input pixels
    (score 0 where the pose file had none, which masks the heat-map loss)."""

    def __init__(self, root, records, transform: PoseTrainTransform, match: PoseMatch,
                 labels=None, size=(256, 128)):
        super().__init__(root, records, transform, labels=labels, size=size)
        self.match = match

    def augment(self, img, seed, index: int) -> dict:
        kp = self._source_keypoints(index, img.shape[:2])
        x, kp = _seeded(lambda im: self.tail(im, kp), img, seed)
        return {"img": x, "keypoints": kp}

    def _source_keypoints(self, index: int, shape) -> np.ndarray:
        """The record's keypoints in the decoded image's pixels (rescaled if the pose file
        recorded another size, e.g. a detector run on resized copies)."""
        kp = self.match.keypoints[index].copy()
        if not self.match.has[index]:
            kp[:, 2] = 0.0
            return kp
        h0, w0 = self.match.image_size[index]
        if h0 > 0 and w0 > 0 and (h0, w0) != tuple(shape):
            kp[:, 0] *= shape[1] / w0
            kp[:, 1] *= shape[0] / h0
        return kp


def attach_pose(dataset: ImageDataset, pose: str | os.PathLike, aug: AugmentConfig) -> PoseImageDataset:
    """The same images and labels as ``dataset``, with keypoints from ``pose`` and the
    keypoint-aware augmentation; logs how many images train without heat-map targets."""
    match = match_pose(pose, dataset.records, dataset.root)
    if match.n_missing:
        log.info("%d of %d training images have no keypoints in %s; their heat-map loss is masked",
                 match.n_missing, len(dataset), pose)
    return PoseImageDataset(dataset.root, dataset.records, PoseTrainTransform(aug), match,
                            labels=dataset.labels, size=dataset.size)


def render_targets(keypoints, heatmap_size: Sequence[int], input_size: Sequence[int], *,
                   sigma: float = 2.0, min_score: float = 0.3):
    """Gaussian targets [B, 17, Hm, Wm] and weights [B, 17] for a batch of input-pixel
    keypoints (torch in, torch out; `reidcli.pose.heatmaps.render_heatmaps`)."""
    from reidcli.pose.heatmaps import render_heatmaps

    return render_heatmaps(keypoints, heatmap_size, tuple(int(v) for v in input_size),
                           sigma=sigma, min_score=min_score)


def check_pose_options(model, pose, method_options: Optional[dict], dataset: ImageDataset,
                       aug: AugmentConfig) -> ImageDataset:
    """``reid pretrain``'s pose wiring: RBNet needs ``--pose`` (unless its heat-map loss is
    off), other archs take none; returns the dataset to train on."""
    from reidcli.utils.errors import ConfigError

    if model.arch != "rbnet":
        raise ConfigError(f"--pose is used only by --arch rbnet (heat-map targets); drop it for --arch {model.arch}")
    mse = (method_options or {}).get("mse_weight")
    if pose is None:
        if mse is not None and mse == 0:
            return dataset
        hint = Path(dataset.root) / "pose.h5"
        found = f" ({hint} exists)" if hint.is_file() else ""
        raise ConfigError(f"--arch rbnet needs --pose POSE.h5 with keypoints of the training images{found}; "
                          f"make one with 'reid extract-pose {dataset.root} -o pose.h5', or pass "
                          "--mse-weight 0 to train without the heat-map loss")
    return attach_pose(dataset, pose, aug)
