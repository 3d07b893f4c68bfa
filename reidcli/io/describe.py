"""`reid info`: a summary of any reidcli file (features, labels, pose, checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reidcli.io import h5
from reidcli.utils.errors import ConfigError, InputError


def describe(path: str | Path, data_format: str | None = None) -> dict[str, Any]:
    """Validate ``path`` fully and return a JSON-able summary of what it holds.

    A folder or a ``.csv`` list is parsed as a dataset (layout ``data_format`` or detected).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path")
    if p.is_dir() or p.suffix.lower() == ".csv":
        return describe_dataset(p, data_format)
    if data_format is not None:
        raise ConfigError(f"--format applies to a dataset folder or .csv list; {p} is a file")
    if p.suffix in (".pt", ".pth"):
        from reidcli.io.ckpt import describe_checkpoint  # filled by the checkpoint module

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


def describe_dataset(path: Path, data_format: str | None = None) -> dict[str, Any]:
    """Parse a dataset folder (layout auto-detected unless ``data_format``) and summarise it."""
    from reidcli.data.layouts import load_dataset

    ds = load_dataset(path, format=data_format)
    splits = {}
    for name, recs in ds.splits.items():
        pids = [r.pid for r in recs]
        splits[name] = {"images": len(recs), "ids": len({p for p in pids if p >= 0}),
                        "unlabelled": sum(p < 0 for p in pids),
                        "cameras": len({r.camid for r in recs}),
                        "modalities": sorted({r.modality for r in recs})}
    meta = {k: v for k, v in ds.meta.items() if k != "notes"}
    return {"file": str(path), "format": "dataset", "layout": ds.format, "root": str(ds.root),
            "valid": True, "summary": ds.summary(), "splits": splits,
            "notes": list(ds.meta.get("notes", [])), "meta": meta}


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


def render(info: dict[str, Any]) -> None:
    """Print a human summary on stdout with rich."""
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    if info["format"] == "dataset":
        return _render_dataset(con, info)
    con.print(f"[bold]{info['file']}[/]: reidcli {info['format']} file, "
              f"version {info.get('version')}, valid")
    if info["format"] == "features":
        t = Table("split", "images", "dim", "dtype", "ids", "unlabelled", "cameras")
        for name, s in info["splits"].items():
            t.add_row(name, str(s["n"]), str(s["dim"]), s["dtype"], str(s["ids"]),
                      str(s["unlabelled"]), str(s["cameras"]))
        con.print(t)
    elif info["format"] == "labels":
        con.print(f"{info['n']} samples, {info['n_clusters']} clusters, {info['n_outliers']} outliers")
        t = Table("cluster size", "clusters")
        for k, v in info["cluster_sizes"].items():
            t.add_row(k, str(v))
        con.print(t)
    elif info["format"] == "pose":
        con.print(f"{info['n']} images, {info['images_without_person']} without a person, "
                  f"mean keypoint score {info['mean_score']:.3f}")
    elif info["format"] == "checkpoint":
        for k, v in info.items():
            if k not in ("file", "format", "provenance"):
                con.print(f"  {k}: {v}")
    for k, v in info.get("attrs", {}).items():
        con.print(f"  {k}: {v}")
    for i, rec in enumerate(info.get("provenance", [])):
        con.print(f"  @PG {i}: {' '.join(rec.get('argv', []))}  ({rec.get('version')}, {rec.get('time')})")


def _render_dataset(con, info: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    con.print(escape(info["summary"]), soft_wrap=True)
    t = Table("split", "images", "ids", "unlabelled", "cameras", "modalities")
    for name, s in info["splits"].items():
        t.add_row(name, str(s["images"]), str(s["ids"]), str(s["unlabelled"]), str(s["cameras"]),
                  ",".join(str(m) for m in s["modalities"]))
    con.print(t)
    for note in info["notes"]:
        con.print(f"  note: {escape(note)}", soft_wrap=True)
