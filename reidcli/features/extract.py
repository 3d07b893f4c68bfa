"""Library entry of ``reid features``: embeddings -> features .h5.

`extract` rebuilds the network from a checkpoint alone, embeds every split of a dataset
(or those asked for), and writes one features file (HDF5 contract v1). Decoding and
resizing run in DataLoader workers (OpenCV, uint8), normalisation on the model's device,
so the network is the bottleneck. ``shard=(i, n)`` embeds the i-th of n contiguous parts
of each split, and `merge_shards` joins the n files into the file one run would write.

>>> extract("m.pt", "data/market", "f.h5", flip=True)          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reidcli.data.records import Dataset, Record
from reidcli.io.atomic import check_outputs, file_digest
from reidcli.io.ckpt import IMAGENET_MEAN, IMAGENET_STD
from reidcli.io.h5 import FeaturesFile, SplitFeatures, check_utf8, write_features
from reidcli.utils.errors import InputError
from reidcli.utils.params import Interval, check_params

log = logging.getLogger(__name__)

# `extract`'s numeric settings checked before any work: a scale of inf or NaN (or <= 0) would
# write all-NaN soft labels (inf * 0 in the softmax) or a softmax that inverts the similarities.
CONSTRAINTS = {"soft_label_scale": [Interval(float, 0, None, closed="neither")]}


class BadImages(InputError):
    """Unreadable images met during extraction (``paths`` relative to the dataset root)."""

    def __init__(self, message: str, paths: list[str]):
        super().__init__(message)
        self.paths = paths


def embed_records(model, root: str | Path, records: Sequence[Record], *, size: tuple[int, int],
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, batch_size: int = 128, workers: int | None = None,
                  device="cpu", flip: bool = False, half: bool = False, normalize: bool = True,
                  stop_on_bad: bool = False, desc: str = "extracting"):
    """Embed ``records`` with ``model`` (eval mode).

    Returns:
        ``(features [N, D] float32 (float16 with ``half``), ok [N] bool)``; rows of
        unreadable images are zero with ``ok`` False.

    Raises:
        BadImages: with ``stop_on_bad``, at the first batch holding an unreadable image.
    """
    import torch
    import torch.nn.functional as F

    from reidcli.data.loader import ImageDataset, make_loader
    from reidcli.data.transforms import Normalizer, ResizeUint8
    from reidcli.utils.progress import progress_bar

    device = torch.device(device)
    dset = ImageDataset(root, records, ResizeUint8(*size), size=size)
    loader = make_loader(dset, batch_size=batch_size, workers=workers, device=device)
    amp = half and device.type == "cuda"
    norm = Normalizer(mean, std, device)
    was_training = model.training
    model.eval()
    feats: Optional[np.ndarray] = None
    ok = np.ones(len(records), dtype=bool)
    pos = 0
    try:
        with progress_bar(desc, total=len(records)) as bar, torch.inference_mode():
            for batch in loader:
                n = int(batch["img"].shape[0])
                ok[pos:pos + n] = batch["ok"].numpy()
                if stop_on_bad and not ok[pos:pos + n].all():
                    raise _bad(records, ~ok[pos:pos + n], pos)
                with torch.autocast(device.type, enabled=amp):
                    f = _forward(model, norm(batch["img"]), flip, batch["modality"])
                if normalize:
                    f = F.normalize(f.float(), dim=1)
                f = f.to(torch.float16 if half else torch.float32).cpu().numpy()
                if feats is None:
                    feats = np.zeros((len(records), f.shape[1]), dtype=f.dtype)
                feats[pos:pos + n] = f
                feats[pos:pos + n][~ok[pos:pos + n]] = 0
                pos += n
                bar.advance(n)
    finally:
        model.train(was_training)
    if feats is None:
        feats = np.zeros((0, int(getattr(model, "feat_dim", 0))), dtype=np.float16 if half else np.float32)
    return feats, ok


def _forward(model, x, flip: bool, modality=None):
    # a two-stream net (arch mrda) routes each image by its modality (0 visible, 1 infrared)
    kw = {"modality": modality.to(x.device)} if getattr(model, "modal", False) else {}
    f = model(x, **kw)
    if flip:  # average with the mirrored image (fast-reid / torchreid test-time flip)
        f = f + model(x.flip(3), **kw)
    return f


def _bad(records: Sequence[Record], bad_mask: np.ndarray, offset: int) -> BadImages:
    paths = [records[offset + i].path for i in np.flatnonzero(bad_mask)]
    return BadImages(f"{len(paths)} unreadable image(s), first {paths[0]}; fix or remove them, "
                     "or pass --skip-bad to leave them out", paths)


MAX_SHARDS = 10**6


def parse_shard(text: Optional[str]) -> Optional[tuple[int, int]]:
    """``"i/n"`` (1 <= i <= n) -> (i, n); None stays None."""
    if text is None:
        return None
    from reidcli.utils.params import ParamError

    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ParamError("shard", f"must look like i/n, e.g. 2/4; got {text!r}") from None
    if not 1 <= i <= n:
        raise ParamError("shard", f"i/n needs 1 <= i <= n; got {text!r}")
    if n > MAX_SHARDS:  # the count is an HDF5 int64 attribute, and more shards than images is empty work
        raise ParamError("shard", f"i/n allows at most {MAX_SHARDS} shards; got {text!r}")
    return i, n


def shard_slice(n_items: int, shard: Optional[tuple[int, int]]) -> slice:
    """The contiguous block of shard (i, n) among ``n_items`` (blocks differ by <= 1)."""
    if shard is None:
        return slice(0, n_items)
    i, n = shard
    return slice((i - 1) * n_items // n, i * n_items // n)


def extract(ckpt: str | os.PathLike, data: str | os.PathLike | Dataset, out: str | os.PathLike, *,
            splits: Optional[Sequence[str]] = None, format: Optional[str] = None,
            cam_regex: Optional[str] = None, flip: bool = False,
            half: bool = False, normalize: bool = True, batch_size: int = 128, workers: int | None = None,
            device: str = "auto", shard: Optional[tuple[int, int]] = None, skip_bad: bool = False,
            bn_domain: Optional[str] = None, save_heatmaps: bool = False,
            net: Optional[str] = None, threads: int | None = None, soft_labels: bool = False,
            soft_label_scale: float = 30.0) -> Path:
    """Embed the splits of ``data`` with the network of ``ckpt`` and write ``out``.

    Unreadable images make it fail before anything is written (listing them), unless
    ``skip_bad``, which leaves them out of the file with a warning per image.
    ``soft_labels`` (checkpoints with MAR's reference agents: ``reid pretrain --method agents``,
    ``reid finetune --method mar``) also stores each image's soft multilabel over the agents,
    softmax(s * normalize(f) normalize(A)^T) with s = ``soft_label_scale`` (MAR eq. 1), as
    ``soft_labels`` [N, Np] float32 in its split's group.
    ``save_heatmaps`` (RBNet checkpoints) also stores each split's predicted keypoint
    heat-maps as ``heatmaps`` [N, 17, H/2, W/2] float16 in its group. ``threads`` and
    ``workers`` (None: from the cores and the device, `reidcli.utils.resources`) set the
    intra-op threads and the decoding processes. ``format`` and ``cam_regex`` (folder /
    unlabelled layouts: each image's camera from this regex's first group matched against its
    relative path) go to `reidcli.data.layouts.load_dataset` when ``data`` is a path.
    """
    from reidcli.models import load_network
    from reidcli.utils.device import resolve_device
    from reidcli.utils.resources import configure

    check_params({"soft_label_scale": soft_label_scale}, CONSTRAINTS)
    check_outputs({"-o": out}, {"--ckpt": ckpt, "DATA": data if not isinstance(data, Dataset) else None})
    dev = resolve_device(device)
    workers = configure(threads, workers, device=dev, loads_data=True).workers
    ds = _dataset(data, format, cam_regex)
    names = list(splits) if splits else list(ds.splits)
    for s in names:
        ds.split(s)  # a missing split is an error naming the ones found
    # names the features file cannot hold fail now, not after the work
    check_utf8([str(Path(ds.root).resolve())], "the dataset folder")
    for s in names:
        check_utf8([r.path for r in ds.split(s)], f"{ds.root} ({s})")
    model, ck = load_network(ckpt, dev, bn_domain=bn_domain, net=net)
    if save_heatmaps:
        from reidcli.pose.backends.rbnet import require_rbnet

        require_rbnet(model, ckpt)
    agents = reference_agents(ck, ckpt) if soft_labels else None
    size = tuple(ck["input_size"])
    result, sizes, skipped = {}, {}, {}
    modal = any(r.modality for split in ds.splits.values() for r in split)  # a cross-modality dataset
    for s in names:
        recs = ds.split(s)[shard_slice(len(ds.split(s)), shard)]
        sizes[s] = len(ds.split(s))
        try:
            feats, ok = embed_records(model, ds.root, recs, size=size, mean=ck["pixel_mean"],
                                      std=ck["pixel_std"], batch_size=batch_size, workers=workers,
                                      device=dev, flip=flip, half=half, normalize=normalize,
                                      stop_on_bad=not skip_bad, desc=f"features {s}")
        except BadImages as exc:
            raise _full_report(ds, names, shard, exc) from None
        for i in np.flatnonzero(~ok):
            log.warning("skipped unreadable image %s", recs[i].path)
        if len(recs) and not ok.any():
            raise BadImages(f"every image of split '{s}' ({len(recs)}) in {ds.root} is unreadable; nothing "
                            "to write: check the dataset folder (are these images?)",
                            [r.path for r in recs])
        skipped[s] = int((~ok).sum())
        result[s] = _split(feats[ok], [r for r, k in zip(recs, ok) if k], modal)
        if agents is not None:
            result[s].extra["soft_labels"] = soft_multilabels(feats[ok], agents, soft_label_scale)
        if save_heatmaps:
            from reidcli.pose.backends.rbnet import heatmaps_for_records

            kept = [r for r, k in zip(recs, ok) if k]
            result[s].extra["heatmaps"] = heatmaps_for_records(
                model, ds.root, kept, size=size, mean=ck["pixel_mean"], std=ck["pixel_std"],
                batch_size=batch_size, workers=workers, device=dev)
    attrs = _attrs(ckpt, ck, ds, normalize, flip, half)
    if shard is not None:
        attrs.update(shard_index=shard[0], shard_count=shard[1], split_sizes=sizes, skipped=skipped)
    ff = FeaturesFile(splits=result, root=str(Path(ds.root).resolve()), attrs=attrs)
    return write_features(out, ff, inputs=[ckpt])


def reference_agents(ck: dict, where) -> np.ndarray:
    """The reference agents [Np, D] a MAR checkpoint carries (``nets['agents']``)."""
    w = ((ck.get("nets") or {}).get("agents") or {}).get("weight")
    if w is None:
        raise InputError(f"{where} holds no reference agents; soft labels need a checkpoint of "
                         "'reid pretrain --method agents' or 'reid finetune --method mar'")
    return w.detach().float().cpu().numpy()


def soft_multilabels(feats: np.ndarray, agents: np.ndarray, scale: float) -> np.ndarray:
    """MAR eq. 1: y_k = softmax_k(s * f^T a_k) over unit-norm features and agents, [N, Np]."""
    f = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    a = agents / np.maximum(np.linalg.norm(agents, axis=1, keepdims=True), 1e-12)
    z = scale * (f.astype(np.float64) @ a.astype(np.float64).T)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _dataset(data, format: Optional[str], cam_regex: Optional[str] = None) -> Dataset:
    if isinstance(data, Dataset):
        return data
    from reidcli.data.layouts import load_dataset

    return load_dataset(data, format, cam_regex=cam_regex)


def _full_report(ds: Dataset, names: Sequence[str], shard, exc: BadImages) -> BadImages:
    """Scan every image of the requested splits so the error lists all bad ones."""
    from reidcli.data.images import check_images

    recs = [r for s in names for r in ds.split(s)[shard_slice(len(ds.split(s)), shard)]]
    bad = check_images([ds.abspath(r) for r in recs])
    rel = [str(Path(p).relative_to(ds.root)) for p in bad] or exc.paths
    shown = ", ".join(rel[:3]) + (" ..." if len(rel) > 3 else "")
    return BadImages(f"{len(rel)} unreadable image(s) in {ds.root}: {shown}; fix or remove them, "
                     "or pass --skip-bad to leave them out", rel)


def _split(feats: np.ndarray, recs: list[Record], modal: bool) -> SplitFeatures:
    """One split's arrays; ``modality`` is recorded for every split of a cross-modality dataset
    (an all-visible gallery too: the cross-modal protocols need it on both sides)."""
    mod = np.array([r.modality for r in recs], dtype=np.int8)
    return SplitFeatures(features=np.ascontiguousarray(feats), paths=[r.path for r in recs],
                         pids=np.array([r.pid for r in recs], dtype=np.int64),
                         camids=np.array([r.camid for r in recs], dtype=np.int64),
                         modality=mod if modal else None)


def _attrs(ckpt, ck: dict, ds: Dataset, normalize: bool, flip: bool, half: bool) -> dict:
    return {"checkpoint": file_digest(ckpt), "checkpoint_path": str(ckpt),
            "model": ck["model_config"].get("arch", ""), "feature_dim": int(ck.get("feat_dim") or 0),
            "normalized": bool(normalize), "dataset_format": ds.format, "flip": bool(flip),
            "half": bool(half), "input_size": list(ck["input_size"]), "method": ck.get("method", "")}
