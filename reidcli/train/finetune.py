"""`finetune`: one round of unsupervised domain adaptation (``reid finetune``).

A round takes a checkpoint, the pseudo-labels of the target training images
(``reid cluster``) and trains with one of the methods of `reidcli.train.methods`
(``pseudo``, ``mmt``, ``kd``, ``joint``) through the one engine. The outer loop
(features -> cluster -> finetune) lives in a Makefile (``bin/uda.mk``).

Guarantees:

* Target ground-truth identities are never read: the target records' ids are replaced by
  -1 before anything is built; only the pseudo-labels reach the method.
* The labels file must list exactly the target's training images, in order.
* The output is written only when the round has finished: the engine checkpoints into a
  hidden sibling (``.<name>.partial``), renamed onto ``out`` at the end, so a failed or
  interrupted round leaves any previous file (``--ckpt`` included, even when ``-o`` names
  it) untouched. ``-o`` equal to ``--ckpt`` is therefore allowed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)
METHOD_NAMES = ("pseudo", "mmt", "kd", "joint")
# checkpoints each method can start from: source models and any adaptation round
STARTS_FROM = {"supervised", "pretrain", "pseudo", "mmt", "kd", "joint"}
ENGINE_DEFAULTS = {"epochs": 1, "iters": 400, "lr": 3.5e-4, "weight_decay": 5e-4, "p": 16, "k": 4}


def _register_methods() -> None:
    from reidcli.train.methods import load_builtin_methods

    load_builtin_methods()


def check_labels(lf, records: list, labels_path: Path, target_root: Path) -> np.ndarray:
    """The pseudo-label array of ``records``; `InputError` unless the files match."""
    paths = [r.path for r in records]
    if len(lf.paths) != len(paths):
        raise InputError(f"{labels_path} labels {len(lf.paths)} images but {target_root} has "
                         f"{len(paths)} training images; cluster the features of this dataset "
                         "('reid features' then 'reid cluster') and pass those labels")
    bad = next((i for i, (a, b) in enumerate(zip(lf.paths, paths)) if a != b), None)
    if bad is not None:
        raise InputError(f"{labels_path}:/paths[{bad}] is '{lf.paths[bad]}' but image {bad} of "
                         f"{target_root} train is '{paths[bad]}'; the labels come from another "
                         "features file: re-run 'reid cluster' on this dataset's features")
    labels = np.asarray(lf.labels, dtype=np.int64)
    k = len(np.unique(labels[labels >= 0]))
    if k < 2:
        raise InputError(f"{labels_path} has {k} cluster(s) and {int((labels < 0).sum())} outliers; "
                         "training needs at least 2 clusters: re-cluster with a larger --eps or "
                         "smaller --min-samples")
    return labels


def _compact(labels: np.ndarray, centers: Optional[np.ndarray]):
    """Renumber cluster ids to 0..K-1 (outliers stay -1) and pick their centres."""
    uniq = np.unique(labels[labels >= 0])
    remap = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    remap[uniq] = np.arange(len(uniq))
    out = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
    return out, (None if centers is None else np.asarray(centers, dtype=np.float32)[uniq])


def load_start(ckpt: Path, method: str, ckpt2: Optional[Path]) -> tuple[dict, Optional[dict]]:
    """The starting checkpoint(s); `InputError` for one a method cannot start from."""
    from reidcli.io.ckpt import load_checkpoint

    ck = load_checkpoint(ckpt)
    cks = [(ckpt, ck)]
    ck2 = None
    if ckpt2 is not None:
        if method != "mmt":
            raise ConfigError(f"--ckpt2 is MMT's second network; --method {method} uses one network")
        ck2 = load_checkpoint(ckpt2)
        cks.append((ckpt2, ck2))
    for path, c in cks:
        if c.get("method") not in STARTS_FROM:
            raise InputError(f"{path} was trained with method '{c.get('method')}', which --method "
                             f"{method} cannot start from (it needs a 'reid pretrain' or 'reid "
                             f"finetune' checkpoint of {', '.join(METHOD_NAMES)})")
    if ck2 is not None and ck2["model_config"].get("arch") != ck["model_config"].get("arch"):
        raise InputError(f"{ckpt2} is a {ck2['model_config'].get('arch')} but {ckpt} a "
                         f"{ck['model_config'].get('arch')}; MMT's two networks must share an architecture")
    return ck, ck2


def _train_transform(ck: dict, erasing: float):
    from reidcli.data.transforms import AugmentConfig, build_train_transform

    h, w = (int(v) for v in ck["input_size"])
    pad = max(1, round(10 * h / 256))  # the recipes' 10 px at 256 x 128, scaled to the input
    aug = AugmentConfig(height=h, width=w, pad=pad, erasing=erasing)
    return build_train_transform(aug, ck["pixel_mean"], ck["pixel_std"]), (h, w)


def _centers(lf, labels: np.ndarray, ck: dict, labels_path: Path):
    import torch

    labels, centers = _compact(labels, lf.centers)
    if centers is None:
        log.info("%s has no centres; the classifier starts from random weights", labels_path)
        return labels, None
    dim = int(ck.get("feat_dim") or 0)
    if dim and centers.shape[1] != dim:
        raise InputError(f"{labels_path}:/centers is {centers.shape[1]}-d but the checkpoint embeds "
                         f"{dim}-d; cluster features extracted with this checkpoint")
    return labels, torch.from_numpy(centers)


def _source_dataset(source: Path, source_format: Optional[str], transform, size):
    from reidcli.data.layouts import load_dataset
    from reidcli.data.loader import ImageDataset
    from reidcli.data.records import relabel

    ds = load_dataset(source, source_format)
    recs = [r for r in ds.split("train") if r.pid >= 0]
    y, _ = relabel([r.pid for r in recs])
    if len(set(y.tolist())) < 2:
        raise InputError(f"{source}: the source training split has fewer than 2 labelled identities")
    return ImageDataset(ds.root, recs, transform, labels=y, size=size), int(y.max()) + 1


def finetune(ckpt: str | os.PathLike, labels: str | os.PathLike, target_root: str | os.PathLike,
             out: str | os.PathLike, *, method: str = "mmt", ckpt2: Optional[str | os.PathLike] = None,
             source: Optional[str | os.PathLike] = None, target_format: Optional[str] = None,
             source_format: Optional[str] = None, epochs: int = 1, iters: int = 400,
             lr: float = 3.5e-4, weight_decay: float = 5e-4, p: int = 16, k: int = 4,
             images_per_bn: int = 16, erasing: float = 0.5, seed: int = 0, device: str = "auto",
             workers: int = 2, amp: bool = True, **options: Any) -> Path:
    """Run one adaptation round and write the new checkpoint to ``out``.

    Args:
        ckpt: starting checkpoint (``reid pretrain`` or a previous round).
        labels: ``reid cluster`` output for the target's training images.
        target_root: the target dataset (its ground-truth ids are never read).
        out: the new checkpoint (may equal ``ckpt``; replaced only on success).
        method: 'pseudo', 'mmt', 'kd' or 'joint'.
        ckpt2: MMT's second source network (default: a copy of ``ckpt``'s).
        source: labelled source dataset (``joint`` only).
        epochs, iters: epochs of this round and optimizer steps per epoch (0: one pass).
        lr, weight_decay, p, k, images_per_bn, erasing, seed, device, workers, amp: engine
            and augmentation settings (MMT's: Adam 3.5e-4, 16 x 4 batches).
        **options: method settings (``alpha``, ``soft_ce_weight``, ``soft_tri_weight``,
            ``kd_every``, ``mu``, ``theta``, ``margin``, ``label_smooth``, ``center_weight``).

    Returns:
        ``out``.
    """
    from reidcli.io.h5 import read_labels
    from reidcli.data.layouts import load_dataset
    from reidcli.utils.seed import seed_everything

    _register_methods()
    if method not in METHOD_NAMES:
        import difflib

        near = difflib.get_close_matches(method, METHOD_NAMES, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(f"--method must be one of {', '.join(METHOD_NAMES)}; got {method!r}{hint}")
    if method == "joint" and source is None:
        raise ConfigError("--method joint trains on labelled source images too; pass --source DATA")
    ckpt, labels, out = Path(ckpt), Path(labels), Path(out)
    ck, ck2 = load_start(ckpt, method, Path(ckpt2) if ckpt2 else None)
    ds = load_dataset(target_root, target_format)
    recs = [dataclasses.replace(r, pid=-1) for r in ds.split("train")]  # ground truth never read
    lf = read_labels(labels)
    y = check_labels(lf, recs, labels, Path(target_root))
    y, centers = _centers(lf, y, ck, labels)
    seed_everything(seed)
    transform, size = _train_transform(ck, erasing)
    data = _datasets(method, ds.root, recs, y, transform, size)
    data.update(init=ck, init2=ck2, centers=centers)
    opts = {k2: v for k2, v in options.items() if v is not None}
    if source is not None:
        data["source"], opts["source_classes"] = _source_dataset(Path(source), source_format, transform, size)
    cfg = _train_config(epochs=epochs, iters=iters, lr=lr, weight_decay=weight_decay, p=p, k=k,
                        images_per_bn=images_per_bn, seed=seed, workers=workers, amp=amp)
    n_clusters = int(y.max()) + 1
    log.info("finetune %s: %d images in %d clusters (%d outliers left out)", method,
             int((y >= 0).sum()), n_clusters, int((y < 0).sum()))
    return _run(method, cfg, ck, data, opts, n_clusters, device, out,
                inputs=[ckpt, labels] + ([Path(ckpt2)] if ckpt2 else []), seed=seed)


def _datasets(method: str, root: Path, recs: list, y: np.ndarray, transform, size) -> dict:
    from reidcli.data.loader import ImageDataset
    from reidcli.train.methods.uda import TwoViewDataset

    keep = np.flatnonzero(y >= 0)  # outliers (-1) are left out
    cls = TwoViewDataset if method == "mmt" else ImageDataset
    return {"target": cls(root, [recs[i] for i in keep], transform, labels=y[keep], size=size)}


def _train_config(*, epochs: int, iters: int, **kw: Any):
    from reidcli.train.config import TrainConfig

    cfg = TrainConfig(epochs=epochs, iters_per_epoch=iters, schedule="constant", warmup_epochs=0.0,
                      milestones=[], log_every=max(1, min(20, iters or 20)), **kw)
    return cfg.validate()


def _run(method: str, cfg, ck: dict, data: dict, opts: dict, n_clusters: int, device: str,
         out: Path, *, inputs: list, seed: int) -> Path:
    from reidcli.io.h5 import make_provenance
    from reidcli.train.dist import DistInfo
    from reidcli.train.methods import EngineContext, get_method
    from reidcli.utils.device import resolve_device

    dev = resolve_device(device)
    mcfg = dict(ck["model_config"], pretrained="none")
    ctx = EngineContext(cfg=cfg, device=dev, dist=DistInfo(), num_classes=n_clusters, data=data,
                        options={**opts, "model_config": mcfg, "method": method})
    meta = {"input_size": ck["input_size"], "pixel_mean": ck["pixel_mean"],
            "pixel_std": ck["pixel_std"], "provenance": make_provenance(inputs, seed, params=opts)}
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    engine = _finetune_engine(get_method(method, opts), cfg, out=partial, meta=meta, ctx=ctx)
    try:
        engine.fit()
        os.replace(partial, out)
        log_src = partial.with_name(partial.stem + ".log.jsonl")
        if log_src.exists():
            os.replace(log_src, out.with_name(out.stem + ".log.jsonl"))
    finally:
        partial.unlink(missing_ok=True)
    return out


def _finetune_engine(*args: Any, **kw: Any):
    """The one engine, plus the previous round's optimizer moments restored after setup."""
    from reidcli.train.engine import Engine

    class FinetuneEngine(Engine):
        def setup(self) -> None:
            super().setup()
            restore = getattr(self.method, "restore_optimizer", None)
            if restore is not None:
                restore(self.opt)

    return FinetuneEngine(*args, **kw)
