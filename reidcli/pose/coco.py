"""COCO-17 keypoints: names, skeleton, left/right flips, and the BlazePose-33 -> COCO-17 map.

COCO order (Lin et al. 2014, "Microsoft COCO: Common Objects in Context"):
nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles (left before right).
BlazePose (Bazarevsky et al. 2020, "BlazePose: On-device Real-time Body Pose tracking")
predicts 33 landmarks whose 17 COCO joints sit at the indices in `BLAZEPOSE_TO_COCO`.
"""

from __future__ import annotations

import numpy as np

from reidcli.io.h5 import COCO17_NAMES

NUM_KEYPOINTS = len(COCO17_NAMES)
KEYPOINT_INDEX = {name: i for i, name in enumerate(COCO17_NAMES)}

# Limbs as index pairs (the mmpose / COCO-API drawing order, 0-based).
COCO17_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12),  # legs and hips
    (5, 11), (6, 12), (5, 6),  # torso
    (5, 7), (6, 8), (7, 9), (8, 10),  # arms
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),  # face to shoulders
)  # fmt: skip

# Index of each keypoint's mirror image (for horizontal-flip augmentation / test-time flip).
COCO17_FLIP_INDEX = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

BLAZEPOSE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

# For each COCO keypoint, the BlazePose landmark with the same name.
BLAZEPOSE_TO_COCO = tuple(BLAZEPOSE33_NAMES.index(name) for name in COCO17_NAMES)


def blazepose_to_coco(landmarks: np.ndarray) -> np.ndarray:
    """Select the 17 COCO joints from BlazePose landmarks.

    Args:
        landmarks: [..., 33, C] (e.g. C = 3 for x, y, score).

    Returns:
        [..., 17, C], a copy, in COCO order.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim < 2 or landmarks.shape[-2] != len(BLAZEPOSE33_NAMES):
        raise ValueError(f"BlazePose landmarks must be [..., 33, C]; got {landmarks.shape}")
    return landmarks[..., list(BLAZEPOSE_TO_COCO), :].copy()


def limb_sides() -> list[str]:
    """'left' / 'right' / 'center' for each limb of `COCO17_SKELETON` (drawing colours)."""
    def side(i: int) -> str:
        name = COCO17_NAMES[i]
        return "left" if name.startswith("left") else "right" if name.startswith("right") else "center"

    out = []
    for a, b in COCO17_SKELETON:
        sa, sb = side(a), side(b)
        out.append(sa if sa == sb else "center")
    return out
