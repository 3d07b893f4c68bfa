"""Torch datasets and DataLoaders over `Record` lists, decoding with OpenCV in the workers.

`ImageDataset` items are dicts ``{"img", "label", "camid", "index", "ok"}``; an unreadable
image yields a zero image with ``ok = False`` so a whole batch is never lost to one bad file
(training raises on it; extraction reports or skips it). Indices may come as
``(index, seed)`` pairs from the samplers in `reidcli.data.sampler`: the transform then
runs under that seed, which makes augmentation independent of worker count and resumable.

Each item also carries ``decode_s`` and ``augment_s``: the seconds the worker spent reading
and decoding the image (with a `reidcli.data.cache.ImageCache`: copying it out of the cache)
and augmenting it; the engine logs their means per image (``decode_ms`` / ``augment_ms``).

A transform with a ``split()`` method (`reidcli.data.transforms.TrainTransform`) splits into
a deterministic ``head`` (decoded uint8 RGB array -> uint8 image: the resize to the input
size) and a random ``tail``; the cache keeps the head's output, so an item is the same with
and without it. Any other transform is all tail.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from reidcli.data.records import Record
from reidcli.utils.errors import InputError

log = logging.getLogger(__name__)


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 [H, W, 3]; `InputError` when it cannot be read."""
    try:
        from reidcli.data.images import read_image
    except ImportError:  # the layouts helper's decoder is not installed yet
        read_image = _read_cv2
    return read_image(path)


def _read_cv2(path: str | Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot decode the image (missing, empty or corrupt)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class ImageDataset:
    """A map-style dataset: ``records[i]`` -> transformed image plus labels.

    Args:
        root: the dataset root the record paths are relative to.
        records: the images.
        transform: RGB uint8 array -> tensor.
        labels: training label per record (e.g. relabelled pids or pseudo-labels); defaults
            to the record pids.
        size: (height, width) of the zero image returned for an unreadable file.
    """

    def __init__(self, root: str | Path, records: Sequence[Record], transform: Callable,
                 labels: Optional[Sequence[int]] = None, size: tuple[int, int] = (256, 128)):
        self.root = Path(root)
        self.records = list(records)
        self.transform = transform
        self.labels = np.asarray(labels if labels is not None else [r.pid for r in self.records],
                                 dtype=np.int64)
        self.size = size
        self.cache = None  # an `ImageCache` of ``head`` outputs (`reidcli.data.cache`)

    @property
    def head(self) -> Optional[Callable]:
        """The transform's deterministic first part (None: the transform is all ``tail``)."""
        return self.transform.split()[0] if hasattr(self.transform, "split") else None

    @property
    def tail(self) -> Callable:
        """The transform's random part, applied to ``head``'s output under the item's seed."""
        return self.transform.split()[1] if hasattr(self.transform, "split") else self.transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item):
        with _one_intra_op_thread():
            t0 = time.perf_counter()
            index, seed, img, meta = self.load(item)
            t1 = time.perf_counter()
            out = self.augment(img, seed, index)
            t2 = time.perf_counter()
        out.update(meta)
        out["decode_s"], out["augment_s"] = t1 - t0, t2 - t1
        return out

    def augment(self, img, seed: Optional[int], index: int) -> dict:
        """The item's image fields from the ``head`` output ``img`` (subclasses add views or
        keypoints)."""
        return {"img": _seeded(self.tail, img, seed)}

    def decode(self, index: int):
        """``head`` of the decoded image of record ``index``; `InputError` when unreadable."""
        img = read_rgb(self.root / self.records[index].path)
        return self.head(img) if self.head is not None else img

    def load(self, item) -> tuple[int, Optional[int], np.ndarray, dict]:
        """Decode one item (or take it from the cache): (index, augmentation seed, the
        ``head`` output, the batch fields every subclass returns). An unreadable image
        becomes zeros with ``ok`` False, so the engine can report every bad path at once
        instead of dying in a worker."""
        index, seed = item if isinstance(item, tuple) else (item, None)
        rec = self.records[index]
        ok, err = True, ""
        img = self.cache.get(index) if self.cache is not None else None
        if img is None:
            try:
                img = self.decode(index)
            except InputError as exc:
                ok, err = False, str(exc)
                zeros = np.zeros((*self.size, 3), dtype=np.uint8)
                img = self.head(zeros) if self.head is not None else zeros
        meta = {"label": int(self.labels[index]), "camid": rec.camid, "modality": rec.modality,
                "index": index, "ok": ok, "error": err}
        return index, seed, img, meta


def _seeded(transform: Callable, img: np.ndarray, seed: Optional[int]):
    import torch
    from torch.utils.data import get_worker_info

    if seed is None:
        return transform(img)
    if get_worker_info() is not None:  # a worker process owns its RNG
        torch.default_generator.manual_seed(seed)
        return transform(img)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return transform(img)


@contextmanager
def _one_intra_op_thread():
    """In the main process (``workers`` 0), decode and augment on one intra-op thread, as a
    worker does: one image's ops are too small to share, and with the training's thread
    pool each op waits at a barrier for every pool thread. Augmenting one 256x128 image on 2
    cores took 36-95 ms with 2 threads and 0.8 ms with 1 while other work kept the cores
    busy (load 3.8), and 0.23 ms against 0.30 ms on a nearly idle machine. The values are
    the same (element-wise and per-pixel ops)."""
    import torch
    from torch.utils.data import get_worker_info

    n = torch.get_num_threads()
    if n == 1 or get_worker_info() is not None:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def make_loader(dataset: ImageDataset, *, batch_sampler=None, batch_size: int = 64,
                workers: int | None = None, device=None, prefetch: int = 4):
    """A DataLoader with OpenCV decoding in ``workers`` processes and pinned memory on CUDA.

    ``workers`` None picks them from the cores and the device
    (`reidcli.utils.resources.plan`). Workers are not persistent so that each epoch's
    worker seeding is reproducible; each runs one OpenCV thread (torch sets its own to one).
    """
    from torch.utils.data import DataLoader

    pin = device is not None and getattr(device, "type", str(device)).startswith("cuda")
    if workers is None:
        from reidcli.utils.resources import plan

        workers = plan(device=device or "cpu", loads_data=True).workers
    kw = dict(num_workers=workers, pin_memory=pin, worker_init_fn=_init_worker)
    if workers > 0:
        kw["prefetch_factor"] = prefetch
        _one_opencv_thread()
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **kw)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, **kw)


def _one_opencv_thread() -> None:
    """One OpenCV thread, so that a loader worker counts as one core. Set in the parent
    before the workers fork: calling ``cv2.setNumThreads`` inside a forked worker tears
    down a thread pool inherited mid-state and can deadlock (seen in the test suite)."""
    import cv2

    cv2.setNumThreads(1)


def _init_worker(worker_id: int) -> None:
    """Seed the worker (`reidcli.utils.seed.worker_init_fn`)."""
    from reidcli.utils.seed import worker_init_fn

    worker_init_fn(worker_id)


def check_batch(batch: dict, dataset: ImageDataset) -> None:
    """Raise `InputError` naming the first unreadable image of a training batch."""
    ok = batch["ok"]
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0, 0])
        raise InputError(f"{batch['error'][i]} (training images must all be readable)")  # it says how to fix it
