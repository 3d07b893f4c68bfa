"""What any reidcli input holds, as a JSON-able dict (the library side of `reid info`):
a dataset folder or ``.csv`` list (layout, per-split ids, images, cameras), or a file
(`reidcli.io.describe.describe_file`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from reidcli.io.describe import describe_file
from reidcli.utils.errors import ConfigError

log = logging.getLogger(__name__)


def describe(path: str | Path, data_format: str | None = None, *, cam_regex: str | None = None) -> dict[str, Any]:
    """Validate ``path`` fully and return a JSON-able summary of what it holds.

    A folder or a ``.csv`` list is parsed as a dataset (layout ``data_format`` or detected;
    ``cam_regex``: the folder / unlabelled layouts' cameras, see `describe_dataset`);
    anything else is a features, labels or pose file or a checkpoint.
    """
    p = Path(path)
    if p.exists() and (p.is_dir() or p.suffix.lower() == ".csv"):
        return describe_dataset(p, data_format, cam_regex=cam_regex)
    for flag, value in (("--format", data_format), ("--cam-regex", cam_regex)):
        if p.exists() and value is not None:
            raise ConfigError(f"{flag} applies to a dataset folder or .csv list; {p} is a file")
    info = describe_file(p)
    if info.get("format") == "checkpoint" and "kind" not in info:  # a network checkpoint: rebuild it
        from reidcli.io.ckpt import load_checkpoint
        from reidcli.models.checkpoint import check_network

        unchecked = check_network(load_checkpoint(p), source=p)
        if unchecked:
            log.warning("%s: %s", p, unchecked)
    return info


def describe_dataset(path: Path, data_format: str | None = None, *, cam_regex: str | None = None) -> dict[str, Any]:
    """Parse a dataset folder (layout auto-detected unless ``data_format``) and summarise it.
    ``cam_regex``: folder / unlabelled layouts read each image's camera from this regex's
    first group matched against its relative path (`reidcli.data.layouts.load_dataset`)."""
    from reidcli.data.layouts import load_dataset

    ds = load_dataset(path, format=data_format, cam_regex=cam_regex, announce=False)  # the summary is the result
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
