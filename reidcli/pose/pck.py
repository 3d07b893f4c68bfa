"""PCK@alpha, torso-normalised: the share of keypoints within alpha x torso of the truth.

PCK as in Yang & Ramanan 2013 ("Articulated Human Detection with Flexible Mixtures of
Parts"), with the torso-size normalisation of Johnson & Everingham 2010 (LSP; PCK@0.2 in
most single-person benchmarks). Torso size here is the mean length of the two torso
diagonals (left shoulder - right hip, right shoulder - left hip) over the visible ones, which
stays stable when a side view shortens the shoulder or hip width. A joint counts when its
ground-truth score is above ``gt_min_score``; a missed detection (score-0 zeros) counts as
wrong, as it should.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidcli.pose.coco import KEYPOINT_INDEX
from reidcli.utils.errors import InputError
from reidcli.utils.params import Interval, check_params

CONSTRAINTS = {"alpha": [Interval(float, 0, 1, closed="right")]}

_DIAGONALS = (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip"))


@dataclass
class PCK:
    value: float  # over all evaluated joints
    per_joint: np.ndarray  # [17], NaN where a joint was never visible
    n_joints: int
    n_images: int  # images with a defined torso
    n_skipped: int  # images without one (no visible diagonal)
    alpha: float = 0.2

    def summary(self) -> str:
        return (f"PCK@{self.alpha:g} = {100 * self.value:.1f}% over {self.n_joints} joints in "
                f"{self.n_images} images ({self.n_skipped} without a visible torso skipped)")


def torso_size(gt: np.ndarray, min_score: float = 0.0) -> np.ndarray:
    """[N] mean visible torso-diagonal length of [N, 17, 3] keypoints; NaN where none."""
    gt = np.asarray(gt, dtype=np.float64)
    lengths = []
    for a, b in _DIAGONALS:
        ia, ib = KEYPOINT_INDEX[a], KEYPOINT_INDEX[b]
        ok = (gt[:, ia, 2] > min_score) & (gt[:, ib, 2] > min_score)
        d = np.linalg.norm(gt[:, ia, :2] - gt[:, ib, :2], axis=-1)
        lengths.append(np.where(ok & (d > 0), d, np.nan))
    stacked = np.stack(lengths, axis=1)
    count = (~np.isnan(stacked)).sum(axis=1)
    total = np.nansum(stacked, axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def pck(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.2, gt_min_score: float = 0.0) -> PCK:
    """PCK@alpha of predictions [N, 17, 3] against ground truth [N, 17, 3]."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[1:] != (17, 3):
        raise InputError(f"PCK needs two [N, 17, 3] arrays; got {pred.shape} and {gt.shape}")
    check_params({"alpha": alpha}, CONSTRAINTS)
    torso = torso_size(gt, gt_min_score)
    has_torso = ~np.isnan(torso)
    visible = (gt[..., 2] > gt_min_score) & has_torso[:, None]
    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    correct = (dist <= alpha * np.where(has_torso, torso, 1.0)[:, None]) & visible
    per_joint_n = visible.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(per_joint_n > 0, correct.sum(0) / per_joint_n, np.nan)
    n = int(visible.sum())
    return PCK(value=float(correct.sum() / n) if n else float("nan"), per_joint=per_joint,
               n_joints=n, n_images=int(has_torso.sum()), n_skipped=int((~has_torso).sum()),
               alpha=alpha)


def pck_files(pred_path, gt_path, alpha: float = 0.2) -> PCK:
    """PCK of one pose file against another, matched by image path."""
    from reidcli.io.h5 import read_pose

    pred = read_pose(pred_path)
    return pck_against(pred.paths, pred.keypoints, gt_path, alpha, name=Path(pred_path).name)


def pck_against(paths: Sequence[str], keypoints: np.ndarray, gt_path, alpha: float = 0.2, *,
                name: str = "the predictions") -> PCK:
    """PCK of keypoints [N, 17, 3] of ``paths`` against the pose file ``gt_path``, matched by
    image path (``name`` names the predictions in the error when no path is shared)."""
    from reidcli.io.h5 import read_pose

    gt = read_pose(gt_path)
    index = gt.index()
    rows = [(i, index[p]) for i, p in enumerate(paths) if p in index]
    if not rows:
        raise InputError(f"{name} and {gt_path} share no image paths; "
                         "give the ground truth of the same dataset")
    pi, gi = np.array(rows).T
    return pck(np.asarray(keypoints)[pi], gt.keypoints[gi], alpha=alpha)
