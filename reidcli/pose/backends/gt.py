"""Ground-truth keypoints from an existing pose file (``reid synth`` writes ``DATA/pose.h5``).

A reference backend: it re-emits known keypoints for the dataset's images, so the rest of
the pipeline (RBNet targets, previews, PCK) can be checked against an exact answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reidcli.pose.backends.base import BACKENDS, PoseBackend
from reidcli.utils.errors import InputError

GT_NAME = "pose.h5"


class GroundTruthBackend(PoseBackend):
    name = "gt"
    needs_images = False

    def __init__(self, model=None, data_root: Optional[Path] = None, **_ignored):
        from reidcli.io.h5 import read_pose

        if model is None:
            if data_root is None or not (Path(data_root) / GT_NAME).is_file():
                raise InputError(f"the gt backend needs --model POSE.h5 (no {GT_NAME} in "
                                 f"{data_root or 'the dataset'}; 'reid synth' writes one)")
            model = Path(data_root) / GT_NAME
        self.path = Path(model)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such pose file; give --model POSE.h5")
        self.pose = read_pose(self.path)
        self.model = self.path.name
        self._index = self.pose.index()

    def predict(self, images: Sequence[np.ndarray], paths: Sequence[str]) -> np.ndarray:
        rows = []
        for p in paths:
            i = self._index.get(p)
            if i is None:
                raise InputError(f"{self.path} has no keypoints for '{p}'; it was made for another "
                                 "dataset (regenerate it, or pick another --backend)")
            rows.append(i)
        return np.asarray(self.pose.keypoints[rows], dtype=np.float32).reshape(len(paths), 17, 3)

    def image_sizes(self, paths: Sequence[str]) -> np.ndarray:
        """(h, w) recorded in the ground-truth file, so images need not be decoded."""
        return np.asarray(self.pose.image_size[[self._index[p] for p in paths]], dtype=np.int64)


@BACKENDS.register("gt")
def build(**options) -> GroundTruthBackend:
    return GroundTruthBackend(**options)
