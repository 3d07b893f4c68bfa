"""What a reidcli file holds (features, labels, pose, checkpoint), as a JSON-able dict for
`reid info`; the CLI renders it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reidcli.io import h5
from reidcli.utils.errors import InputError


def describe_file(path: str | Path) -> dict[str, Any]:
    """Validate a features, labels or pose ``.h5`` file or a ``.pt`` checkpoint fully and
    return a JSON-able summary of what it holds (`reidcli.data.describe.describe` also
    takes dataset folders)."""
    p = Path(path)
    if not p.exists():
        from reidcli.io.atomic import missing_message

        raise InputError(missing_message(p))
    if p.suffix in (".pt", ".pth"):
        from reidcli.io.ckpt import describe_checkpoint

        return describe_checkpoint(p)
    obj = h5.read_any(p)
    head = {"file": str(p), "valid": True, "size_bytes": p.stat().st_size}
    if isinstance(obj, h5.FeaturesFile):
        head.update(format="features", version=obj.attrs.get("reid_format_version"),
                     root=obj.root, attrs=_public(obj.attrs), splits={
                         name: _split_summary(s) for name, s in obj.splits.items()})
    elif isinstance(obj, h5.LabelsFile):
        head.update(format="labels", version=obj.attrs.get("reid_format_version"),
                    attrs=_public(obj.attrs), n=len(obj.labels), n_clusters=obj.n_clusters,
                    n_outliers=obj.n_outliers, cluster_sizes=cluster_size_histogram(obj.labels),
                    centers=None if obj.centers is None else list(obj.centers.shape))
    else:
        k = obj.keypoints
        found = (k[:, :, 2] > 0).any(axis=1)
        head.update(format="pose", version=obj.attrs.get("reid_format_version"), root=obj.root,
                    attrs=_public(obj.attrs), n=len(obj.paths), images_without_person=int((~found).sum()),
                    mean_score=float(k[:, :, 2].mean()) if len(k) else 0.0)
    head["provenance"] = obj.provenance
    return head


def _public(attrs: dict) -> dict:
    return {k: v for k, v in attrs.items() if k not in ("reid_format", "reid_format_version")}


def _split_summary(s: h5.SplitFeatures) -> dict:
    pids = s.pids[s.pids >= 0]
    out = {"n": len(s), "dim": int(s.features.shape[1]), "dtype": str(s.features.dtype),
           "ids": int(len(np.unique(pids))), "unlabelled": int((s.pids < 0).sum()),
           "cameras": int(len(np.unique(s.camids)))}
    if s.modality is not None:
        out["modalities"] = {int(m): int((s.modality == m).sum()) for m in np.unique(s.modality)}
    return out


def cluster_size_histogram(labels: np.ndarray) -> dict[str, int]:
    """Number of clusters per size bucket: 1, 2, 3, 4-7, 8-15, 16-31, 32+."""
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    edges = [(1, 1), (2, 2), (3, 3), (4, 7), (8, 15), (16, 31), (32, 1 << 62)]
    out = {}
    for lo, hi in edges:
        key = str(lo) if lo == hi else (f"{lo}+" if hi > 1 << 40 else f"{lo}-{hi}")
        out[key] = int(((sizes >= lo) & (sizes <= hi)).sum())
    return out
