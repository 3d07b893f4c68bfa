"""Library entry of ``reid merge``: join the n files of ``reid features --shard i/n``.

The shard attributes (`SHARD_ATTRS`) are what `extract` adds to a shard; the merged file drops them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from reidcli.io.h5 import FeaturesFile, SplitFeatures, read_features, write_features
from reidcli.utils.errors import ConfigError, FormatError, InputError

SHARD_ATTRS = ("shard_index", "shard_count", "split_sizes", "skipped")


def merge_shards(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Join the n files of ``reid features --shard i/n`` into one features file.

    Checks that all n shards of one extraction (same checkpoint, splits and settings) are
    present exactly once and that the row counts add up.
    """
    if not paths:
        raise ConfigError("give the shard files to merge")
    files = [read_features(p) for p in paths]
    first = files[0]
    for p, f in zip(paths, files):
        if "shard_index" not in f.attrs:
            raise FormatError(f"{p} is not a shard (no shard_index attribute); merge only outputs of "
                              "'reid features --shard i/n'")
    n = int(first.attrs["shard_count"])
    got = sorted(int(f.attrs["shard_index"]) for f in files)
    if got != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(got))
        what = f"missing shard(s) {missing}" if missing else f"repeated shard indices {got}"
        raise InputError(f"merging {len(files)} file(s) of a {n}-way extraction: {what}; give each "
                         f"of the {n} shard files exactly once")
    _same_run(paths, files)
    files.sort(key=lambda f: int(f.attrs["shard_index"]))
    merged = {s: _concat([f.splits[s] for f in files]) for s in first.splits}
    _check_counts(first, files, merged)
    attrs = {k: v for k, v in first.attrs.items() if k not in SHARD_ATTRS}
    ff = FeaturesFile(splits=merged, root=first.root, attrs=attrs)
    return write_features(out, ff, inputs=list(paths))


def _same_run(paths, files) -> None:
    keys = ("checkpoint", "normalized", "flip", "half", "shard_count", "dataset_format")
    for p, f in zip(paths[1:], files[1:]):
        for k in keys:
            if f.attrs.get(k) != files[0].attrs.get(k):
                raise InputError(f"{p} differs from {paths[0]} in '{k}' ({f.attrs.get(k)!r} vs "
                                 f"{files[0].attrs.get(k)!r}); merge shards of one extraction only")
        if sorted(f.splits) != sorted(files[0].splits) or f.root != files[0].root:
            raise InputError(f"{p} holds splits {sorted(f.splits)} of {f.root} but {paths[0]} holds "
                             f"{sorted(files[0].splits)} of {files[0].root}; merge shards of one extraction only")


def _concat(parts: list[SplitFeatures]) -> SplitFeatures:
    mods = [p.modality for p in parts]
    modality = None
    if any(m is not None for m in mods):
        modality = np.concatenate([m if m is not None else np.zeros(len(p), np.int8)
                                   for m, p in zip(mods, parts)])
    return SplitFeatures(features=np.concatenate([p.features for p in parts]),
                         paths=[x for p in parts for x in p.paths],
                         pids=np.concatenate([p.pids for p in parts]),
                         camids=np.concatenate([p.camids for p in parts]), modality=modality)


def _check_counts(first: FeaturesFile, files: list[FeaturesFile], merged: dict) -> None:
    sizes = _dict_attr(first.attrs.get("split_sizes"))
    for s, split in merged.items():
        skipped = sum(int(_dict_attr(f.attrs.get("skipped")).get(s, 0)) for f in files)
        if s in sizes and len(split) + skipped != int(sizes[s]):
            raise InputError(f"split '{s}': the shards hold {len(split)} rows (+{skipped} skipped) but "
                             f"the dataset had {sizes[s]}; were they made from the same dataset?")


def _dict_attr(value) -> dict:
    """A dict attribute (stored as JSON text by the HDF5 writer)."""
    if isinstance(value, str):
        return json.loads(value) if value not in ("", "null") else {}
    return dict(value or {})
