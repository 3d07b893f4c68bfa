"""A decoded-image cache for training (``--cache-images``): each image is decoded once.

The cache holds, for every record of a dataset, the output of its transform's deterministic
``head`` (`reidcli.data.transforms.TrainTransform`: the decoded image resized to the input
size, uint8) in one shared-memory buffer. It is filled once, in the training process, by a
pool of threads (OpenCV and torch release the GIL) before the loader starts; DataLoader
workers inherit it (fork: the pages are shared; spawn: the buffer is passed as a
shared-memory tensor), so no worker decodes an image again and only the random ``tail``
(flip, pad + crop, erasing, ...) runs per sample. An item is therefore the same with and
without the cache, bit for bit.

Size: with a resizing head every image takes ``height x width x 3`` bytes; otherwise
(``--resized-crop`` crops the decoded image, the pose transform moves keypoints by the
decoded size) its decoded size, read from the file header. `plan_caches` refuses
(`ConfigError`, one line) when the total exceeds ``MEMORY_FRACTION`` of the memory the
process may still use (`reidcli.utils.resources.available_memory`) rather than pushing
the machine into swap; an unreadable image is left out and decoded (and reported) as
without the cache.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np

from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)

MEMORY_FRACTION = 0.5  # of the available memory the caches may take together


def _gb(n: int) -> str:
    """``n`` bytes for people: 36.9 kB, 512.0 MB, 2.15 GB."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


class ImageCache:
    """``head`` outputs of a dataset's images, one slot per record, in one uint8 buffer.

    Slots hold HWC bytes; `get` returns what ``head`` returned (a [3, h, w] uint8 tensor
    viewing HWC memory, as ``to_tensor_uint8`` makes, or an [h, w, 3] array), a copy, or
    None for an image that is not cached.
    """

    def __init__(self, shapes: Sequence[tuple[int, int]], tensor_output: bool):
        import torch

        self.shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 2)
        sizes = self.shapes[:, 0] * self.shapes[:, 1] * 3
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.data = torch.empty(int(self.offsets[-1]), dtype=torch.uint8).share_memory_()
        self.filled = np.zeros(len(self.shapes), dtype=bool)
        self.tensor_output = tensor_output

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1])

    def put(self, index: int, img) -> bool:
        """Store ``head`` output ``img``; False (not stored) when its size is not the slot's."""
        import torch

        hwc = img.permute(1, 2, 0) if torch.is_tensor(img) else torch.from_numpy(np.asarray(img))
        h, w = self.shapes[index]
        if tuple(hwc.shape) != (h, w, 3) or hwc.dtype != torch.uint8:
            return False
        lo, hi = self.offsets[index], self.offsets[index + 1]
        self.data[lo:hi].view(int(h), int(w), 3).copy_(hwc)
        self.filled[index] = True
        return True

    def get(self, index: int):
        if not self.filled[index]:
            return None
        h, w = (int(v) for v in self.shapes[index])
        lo, hi = self.offsets[index], self.offsets[index + 1]
        hwc = self.data[lo:hi].view(h, w, 3).clone()
        return hwc.permute(2, 0, 1) if self.tensor_output else hwc.numpy()


def _slot_shapes(dataset) -> list[tuple[int, int]]:
    """(h, w) of each record's ``head`` output; (0, 0) for an image whose header cannot be
    read (left out of the cache)."""
    from reidcli.data.images import image_size

    size = getattr(dataset.transform, "cache_size", None)
    if size is not None:
        return [tuple(size)] * len(dataset)
    shapes = []
    for rec in dataset.records:
        try:
            shapes.append(image_size(dataset.root / rec.path))
        except InputError:
            shapes.append((0, 0))
    return shapes


def plan_caches(datasets: Sequence, available: Optional[int] = None,
                fraction: float = MEMORY_FRACTION) -> list[ImageCache]:
    """One empty `ImageCache` per dataset, or `ConfigError` when together they would take
    more than ``fraction`` of ``available`` bytes (default: `available_memory`)."""
    from reidcli.utils.resources import available_memory

    shapes = [_slot_shapes(d) for d in datasets]
    need = int(sum(int(h) * int(w) * 3 for s in shapes for h, w in s))
    avail = available_memory() if available is None else int(available)
    if need > fraction * avail:
        n = sum(len(d) for d in datasets)
        raise ConfigError(f"--cache-images: the {n} decoded training images need {_gb(need)} but only "
                          f"{_gb(int(fraction * avail))} may be used ({fraction:g} of the {_gb(avail)} "
                          "of memory available); drop --cache-images, or lower --height/--width")
    return [ImageCache(s, tensor_output=d.head is not None) for d, s in zip(datasets, shapes)]


def fill(dataset, cache: ImageCache, threads: int = 1) -> int:
    """Decode every image of ``dataset`` into ``cache`` with ``threads`` threads; returns how
    many were stored (unreadable images are skipped: the loader reports them as usual)."""

    def one(i: int) -> bool:
        if cache.shapes[i, 0] == 0:
            return False
        try:
            return cache.put(i, dataset.decode(i))
        except InputError:
            return False

    with ThreadPoolExecutor(max(1, int(threads))) as pool:
        return sum(pool.map(one, range(len(dataset)), chunksize=64))


def cache_datasets(datasets: Sequence, threads: int = 1, available: Optional[int] = None) -> int:
    """Give each distinct dataset of ``datasets`` a filled cache (`plan_caches`, `fill`);
    returns the bytes held."""
    unique = list({id(d): d for d in datasets}.values())
    caches = plan_caches(unique, available)
    t0, stored = time.perf_counter(), 0
    for d, c in zip(unique, caches):
        stored += fill(d, c, threads)
        d.cache = c
    total = sum(c.nbytes for c in caches)
    log.info("--cache-images: decoded %d of %d images once (%s) in %.1f s", stored,
             sum(len(d) for d in unique), _gb(total), time.perf_counter() - t0)
    return total
