"""Embeddings of a list of image files (the Python counterpart of ``reid features`` when
the images are not a dataset folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from reidcli.utils.errors import InputError


def embed_images(ckpt: str | os.PathLike | tuple[Any, dict], paths: Sequence[str | os.PathLike], *,
                 root: str | os.PathLike = ".", device: str = "auto", batch_size: int = 128,
                 flip: bool = False, normalize: bool = True, workers: Optional[int] = None,
                 net: Optional[str] = None, bn_domain: Optional[str] = None) -> np.ndarray:
    """Features [len(paths), D] float32 of the images ``paths`` (relative to ``root``, or
    absolute), computed as ``reid features`` computes them: resized to the checkpoint's
    input size, normalised with its pixel mean / std, optionally averaged with the mirrored
    image (``flip``), L2-normalised (``normalize``).

    ``ckpt`` is a checkpoint file, or the ``(model, checkpoint dict)`` pair that
    `reidcli.models.load_network` returns (load once, embed many lists); ``net`` and
    ``bn_domain`` choose the network of a file as ``reid features --net / --bn-domain``.
    An unreadable image is an `InputError` naming it (`reidcli.features.BadImages`).
    """
    from reidcli.data.records import Record
    from reidcli.features.extract import embed_records
    from reidcli.models import load_network
    from reidcli.utils.device import resolve_device
    from reidcli.utils.resources import configure

    dev = resolve_device(device)
    workers = configure(None, workers, device=dev, loads_data=True).workers
    if isinstance(ckpt, tuple):
        model, ck = ckpt
        model = model.to(dev)
    else:
        model, ck = load_network(ckpt, dev, bn_domain=bn_domain, net=net)
    names = [os.fspath(p) for p in paths]
    if not names:
        raise InputError("no images to embed; give a non-empty list of image paths")
    recs = [Record(Path(p).as_posix(), -1, 0) for p in names]
    feats, _ = embed_records(model, Path(root), recs, size=tuple(ck["input_size"]), mean=ck["pixel_mean"],
                             std=ck["pixel_std"], batch_size=batch_size, workers=workers, device=dev, flip=flip,
                             normalize=normalize, stop_on_bad=True, desc="features")
    return feats
