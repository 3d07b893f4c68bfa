"""`finetune`: one round of unsupervised domain adaptation (``reid finetune``).

A round takes a checkpoint, the pseudo-labels of the target training images
(``reid cluster``) and trains with one of the adaptation methods of
`reidcli.train.methods` (``pseudo``, ``mmt``, ``kd``, ``joint``; ``mar`` needs no
pseudo-labels but a labelled ``reference`` set, ``camstyle`` a labelled ``source`` and
camera-styled target images, its pseudo-labels optional) through the one engine,
with the same config objects as `reidcli.train.pretrain.pretrain` (a `FinetuneConfig`,
which is a `TrainConfig` with one round's defaults) plus the method's options object.
The outer loop (features -> cluster -> finetune) lives in a Makefile (``bin/uda.mk``).

>>> from reidcli.train.config import FinetuneConfig
>>> from reidcli.train.methods.options import PseudoOptions
>>> finetune("m.pt", "labels.h5", "data/duke", "m2.pt", method="pseudo",
...          options=PseudoOptions(margin=0.5), train=FinetuneConfig(iters_per_epoch=80))  # doctest: +SKIP

Guarantees:

* Target ground-truth identities are never read: the target records' ids are replaced by
  -1 before anything is built; only the pseudo-labels reach the method.
* The labels file must list exactly the target's training images, in order.
* The output is written only when the round has finished: the engine checkpoints into a
  hidden sibling (``.<name>.partial``), renamed onto ``out`` at the end, so a failed or
  interrupted round leaves any previous file (``--ckpt`` included, even when ``-o`` names
  it) untouched. ``-o`` equal to ``--ckpt`` is therefore allowed. An output that is a device
  node or a FIFO (``-o /dev/null``) is written directly, once, at the end, and gets no side
  files (no ``.partial``, log or config beside it, i.e. nothing in ``/dev``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from reidcli.data.transforms import AugmentConfig
from reidcli.train.config import FinetuneConfig, TrainConfig, fit_schedule
from reidcli.train.methods import (
    DEFAULT_METHODS,
    TRAINING_METHODS,
    method_names,
    method_options,
    resolve_method,
)
from reidcli.train.methods.options import MethodOptions
from reidcli.utils.errors import ConfigError, InputError
from reidcli.utils.params import NotApplicable, ParamError, reject_given, reject_unknown

log = logging.getLogger(__name__)
DEFAULT_METHOD = DEFAULT_METHODS["finetune"]
# method names of checkpoints from before the method registry, still accepted as a start
OLD_METHOD_NAMES = ("pretrain",)
# keywords of `finetune` itself among the flat settings of `finetune_from_settings`
RUN_KEYWORDS = ("ckpt2", "source", "target_format", "source_format", "styled", "device", "reference",
                "reference_format", "cam_regex")


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
    from reidcli.cluster.run import degenerate

    problem = degenerate(labels, dict(lf.attrs), str(labels_path))
    if problem is not None:
        raise InputError(problem if "at least 2 clusters" in problem else
                         f"{problem}; training needs at least 2 clusters")
    return labels


def _compact(labels: np.ndarray, centers: Optional[np.ndarray]):
    """Renumber cluster ids to 0..K-1 (outliers stay -1) and pick their centres."""
    keep = labels >= 0
    uniq, inv = np.unique(labels[keep], return_inverse=True)  # no array as long as the largest id
    out = np.full(len(labels), -1, dtype=np.int64)
    out[keep] = inv
    return out, (None if centers is None else np.asarray(centers, dtype=np.float32)[uniq])


def load_start(ckpt: Path, method: str, ckpt2: Optional[Path], kind: type) -> tuple[dict, Optional[dict]]:
    """The starting checkpoint(s); `InputError` for one a method cannot start from."""
    from reidcli.io.ckpt import load_checkpoint

    ck = load_checkpoint(ckpt)
    cks = [(ckpt, ck)]
    ck2 = None
    if ckpt2 is not None:
        if kind.start_checkpoints < 2:
            raise ParamError("ckpt2", f"is MMT's second network; --method {method} uses one network")
        ck2 = load_checkpoint(ckpt2)
        cks.append((ckpt2, ck2))
    for path, c in cks:
        if c.get("method") not in TRAINING_METHODS and c.get("method") not in OLD_METHOD_NAMES:
            raise InputError(f"{path} was trained with method '{c.get('method')}', which --method "
                             f"{method} cannot start from (it needs a 'reid pretrain' or 'reid "
                             f"finetune' checkpoint of {', '.join(method_names('finetune'))})")
    if ck2 is not None and ck2["model_config"].get("arch") != ck["model_config"].get("arch"):
        raise InputError(f"{ckpt2} is a {ck2['model_config'].get('arch')} but {ckpt} a "
                         f"{ck['model_config'].get('arch')}; MMT's two networks must share an architecture")
    return ck, ck2


def finetune_augment(ck: dict, augment: AugmentConfig | Mapping[str, Any] | None = None) -> AugmentConfig:
    """The augmentation of a round on checkpoint ``ck``: by default the one that trained the
    checkpoint (its ``augment`` record: Chen et al. 2022 and LSTM-UDA 2021 fine-tune with their
    pre-training crop and colour jitter), else the checkpoint's input size with the recipes'
    10 px padding at 256 x 128 scaled to it; a dict changes fields of that default; an
    `AugmentConfig` is used as it is (at the checkpoint's input size)."""
    h, w = (int(v) for v in ck["input_size"])
    aug = augment
    if not isinstance(aug, AugmentConfig):
        changes = dict(augment or {})
        reject_unknown(changes, [f.name for f in dataclasses.fields(AugmentConfig)], what="AugmentConfig")
        aug = dataclasses.replace(_trained_augment(ck, h, w), **changes)
    if (aug.height, aug.width) != (h, w):
        raise ConfigError(f"the augmentation is {aug.height}x{aug.width} but the checkpoint takes {h}x{w} "
                          "inputs; leave height and width to the checkpoint")
    return aug.validate()


def _trained_augment(ck: dict, h: int, w: int) -> AugmentConfig:
    rec = ck.get("augment")
    if not rec:  # checkpoints written before the augmentation was recorded
        return AugmentConfig(height=h, width=w, pad=max(1, round(10 * h / 256)))
    known = {f.name for f in dataclasses.fields(AugmentConfig)}
    return AugmentConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in rec.items() if k in known})


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


def _source_dataset(ds, where, transform, size, what: str = "source"):
    """The labelled training images of ``ds``, the dataset loaded from ``where`` (``--source`` /
    ``--reference``, named in the error)."""
    from reidcli.data.loader import ImageDataset
    from reidcli.data.records import relabel

    recs = [r for r in ds.split("train") if r.pid >= 0]
    y, _ = relabel([r.pid for r in recs])
    if len(set(y.tolist())) < 2:
        raise InputError(f"{where}: the {what} training split has fewer than 2 labelled identities; "
                         f"pass a dataset with identity labels as the {what}")
    return ImageDataset(ds.root, recs, transform, labels=y, size=size), int(y.max()) + 1


def finetune(ckpt: str | os.PathLike, labels: str | os.PathLike | None, target_root: str | os.PathLike,
             out: str | os.PathLike, *, method: str = DEFAULT_METHOD,
             options: MethodOptions | Mapping[str, Any] | None = None,
             train: Optional[TrainConfig] = None,
             augment: AugmentConfig | Mapping[str, Any] | None = None,
             ckpt2: Optional[str | os.PathLike] = None, source: Optional[str | os.PathLike] = None,
             target_format: Optional[str] = None, source_format: Optional[str] = None,
             styled: Optional[str | os.PathLike] = None, device: str = "auto",
             reference: Optional[str | os.PathLike] = None, reference_format: Optional[str] = None,
             cam_regex: Optional[str] = None, config_file: str | os.PathLike | None = None) -> Path:
    """Run one adaptation round and write the new checkpoint to ``out``.

    Args:
        ckpt: starting checkpoint (``reid pretrain`` or a previous round).
        labels: ``reid cluster`` output for the target's training images (None for a
            method that needs no clustering: ``mar``).
        target_root: the target dataset (its ground-truth ids are never read).
        out: the new checkpoint (may equal ``ckpt``; replaced only on success).
        method: an adaptation method: 'pseudo', 'mmt', 'kd', 'joint', 'camstyle' or 'mar'.
        options: the method's options object (``PseudoOptions``, ``MMTOptions``, ...) or a
            dict of its fields; a field of another method is an error. None: defaults.
        train: engine settings; default `FinetuneConfig()` (MMT's round: Adam 3.5e-4,
            400 steps per epoch, 16 x 4 batches, seed, workers, AMP).
        augment: see `finetune_augment` (default: the checkpoint's input size).
        ckpt2: MMT's second source network (default: a copy of ``ckpt``'s).
        source: labelled source dataset (methods that use one: ``joint``, ``camstyle``).
        reference: labelled reference dataset (``mar``: one agent per identity).
        target_format, source_format, reference_format: dataset layouts (auto-detected when None).
        cam_regex: folder / unlabelled layouts (target, source and reference alike): each
            image's camera is this regex's first group matched against its relative path
            (`reidcli.data.layouts.load_datasets`).
        styled: a ``reid stylize apply`` folder of the target's training images: each
            styled image joins its original's pseudo-label (the camera-style positives
            of LSTM-UDA 2021); required by ``camstyle``, where without
            ``labels`` each target image and its styled versions are one class.
        device: auto | cpu | cuda | cuda:N.

        config_file: the ``--config`` file the settings came from (recorded in the provenance).

    Returns:
        ``out``. The resolved settings are written beside it as ``<stem>.config.toml`` and
        recorded in its provenance (``params.config``), as `reidcli.train.pretrain.pretrain` does.
    """
    from reidcli.data.layouts import load_datasets
    from reidcli.io.h5 import read_labels
    from reidcli.utils.seed import seed_everything

    kind = resolve_method(method, "finetune")
    opts = method_options(method, options, method_class=kind)
    if kind.uses_source and source is None:
        raise ConfigError(f"--method {method} trains on labelled source images too; pass --source DATA")
    if source is not None and not kind.uses_source:
        raise NotApplicable("source", f"does not apply to --method {method}; it trains on the target alone")
    _check_needs(kind, method, labels, reference, styled)
    if styled is not None:  # before any work: an unmerged shard holds only part of the styled images
        from reidcli.stylize.manifest import require_whole_tree

        require_whole_tree(styled)
    reject_given({"source_format": source_format}, ["source_format"], applies=source is not None,
                 what="without --source (it is the layout of --source)")
    reject_given({"reference_format": reference_format}, ["reference_format"], applies=reference is not None,
                 what="without --reference (it is the layout of --reference)")
    cfg = _round_config(train)
    ckpt, out = Path(ckpt), Path(out)
    ck, ck2 = load_start(ckpt, method, Path(ckpt2) if ckpt2 else None, kind)
    _check_reference(kind, method, reference, ck, ckpt)
    aug = finetune_augment(ck, augment)
    ds, source_ds, reference_ds = load_datasets(
        [(target_root, target_format), (source, source_format), (reference, reference_format)], cam_regex=cam_regex)
    recs = [dataclasses.replace(r, pid=-1) for r in ds.split("train")]  # ground truth never read
    if labels is not None:
        labels = Path(labels)
        lf = read_labels(labels)
        y = check_labels(lf, recs, labels, Path(target_root))
        y, centers = _centers(lf, y, ck, labels)
    elif kind.uses_styled:  # no clustering: each target image (and its styled versions) one class
        y, centers = np.arange(len(recs), dtype=np.int64), None
    else:  # a method without clustering: every target image, unlabelled
        y, centers = np.full(len(recs), -1, dtype=np.int64), None
    n_styled = 0
    if styled is not None:
        from reidcli.stylize.manifest import add_styled

        n_orig = len(recs)
        recs, y = add_styled(recs, y, ds.root, styled)
        n_styled = len(recs) - n_orig
    seed_everything(cfg.seed, cfg.deterministic)
    transform, size = _train_transform(ck, aug)
    data = _datasets(kind.views, ds.root, recs, y, transform, size, keep_all=labels is None)
    data.update(init=ck, init2=ck2, centers=centers)
    facts: dict[str, Any] = {"styled_images": n_styled} if styled is not None else {}
    if source is not None:
        data["source"], facts["source_classes"] = _source_dataset(source_ds, source, transform, size)
    if reference is not None:
        data["reference"], facts["reference_classes"] = _source_dataset(reference_ds, reference, transform, size,
                                                                        what="reference")
    n_clusters = int(y.max()) + 1 if (y >= 0).any() else 0
    log.info("finetune %s: %d target images (%d styled), %d %s (%d outliers left out)", method,
             len(data["target"]), n_styled, n_clusters, "clusters" if labels is not None else "classes",
             int((y < 0).sum()) if labels is not None else 0)
    from reidcli.train.settings import flat_settings

    resolved = flat_settings({"method": method, "options": opts, "train": cfg, "augment": aug, "ckpt2": ckpt2,
                              "source": source, "target_format": target_format, "source_format": source_format,
                              "styled": styled, "device": device, "reference": reference,
                              "reference_format": reference_format, "cam_regex": cam_regex})
    return _run(method, kind, opts, cfg, ck, data, facts, n_clusters, device, out,
                inputs=[ckpt] + ([labels] if labels is not None else []) + ([Path(ckpt2)] if ckpt2 else [])
                + ([Path(reference)] if reference is not None else [])
                + ([Path(config_file)] if config_file is not None else []),
                augment=dataclasses.asdict(aug), resolved=resolved)


def _check_needs(kind, method: str, labels, reference, styled=None) -> None:
    """`ConfigError` / `ParamError` unless ``labels``, ``reference`` and ``styled`` suit the method."""
    if kind.uses_styled and styled is None:
        raise ConfigError(f"--method {method} trains on camera-styled target images; pass --styled DIR "
                          "(the output of 'reid stylize apply' on the target)")
    if kind.uses_labels and labels is None and not kind.labels_optional:
        raise ConfigError(f"--method {method} trains on pseudo-labels; pass --labels FILE (the output of "
                          "'reid cluster')")
    if labels is not None and not kind.uses_labels:
        raise NotApplicable("labels", f"does not apply to --method {method}; it needs no clustering")
    if reference is not None and not kind.uses_reference:
        raise NotApplicable("reference", f"does not apply to --method {method}")


def _check_reference(kind, method: str, reference, ck: dict, ckpt: Path) -> None:
    """A method with reference agents (``mar``) needs ``--reference`` every step; the message
    says where agents come from when the checkpoint has none."""
    if not kind.uses_reference or reference is not None:
        return
    if "agents" not in (ck.get("nets") or {}):
        raise ConfigError(f"{ckpt} has no reference agents for --method {method}: run 'reid pretrain "
                          "--method agents' on a labelled reference set, or pass --reference DATA to "
                          "build the agents from it")
    raise ConfigError(f"--method {method} trains on labelled reference images too; pass --reference DATA "
                      "(the labelled set its agents were learnt on)")


def finetune_from_settings(ckpt: str | os.PathLike, labels: str | os.PathLike | None,
                           target_root: str | os.PathLike, out: str | os.PathLike,
                           recipe: Optional[str] = None, config: str | os.PathLike | None = None,
                           config_aliases: Optional[Mapping[str, str]] = None,
                           defaults: Optional[Mapping[str, Any]] = None, **settings: Any) -> Path:
    """`finetune` from flat keyword settings (the ``reid finetune`` flags): ``method``, the
    fields of `FinetuneConfig` and `AugmentConfig` given, the keywords of `finetune`
    (``ckpt2``, ``source``, ``device``, ...), and anything else as the method's options, so
    a setting that is no option of the chosen method is a `ParamError` naming it.
    ``recipe`` names a paper recipe (`reidcli.recipes`) whose finetune settings fill those
    not given. ``config``, ``config_aliases`` and ``defaults`` as in
    `reidcli.train.pretrain.pretrain_from_settings`."""
    from reidcli.train.settings import over, over_recipe, read_config, recipe_schedule

    file = read_config(config, "finetune", config_aliases) if config is not None else {}
    recipe = recipe if recipe is not None else file.get("recipe")
    file.pop("recipe", None)
    args = finetune_arguments(over_recipe(recipe, "finetune", over(over(defaults or {}, file), settings)))
    given = over(file, settings)  # a warm-up or milestones given too long are refused, not scaled
    args["train"] = fit_schedule(args["train"], given, recipe_schedule(recipe, "finetune", FinetuneConfig))
    return finetune(ckpt, labels, target_root, out, **args, config_file=config)


def finetune_arguments(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `finetune` (``method``, ``options``, ``train``, ``augment``
    and its run keywords) from flat settings; see `finetune_from_settings`."""
    from reidcli.train.settings import batch_size_to_p, split_settings

    s = batch_size_to_p(settings, FinetuneConfig)
    method = s.pop("method", None) or DEFAULT_METHOD
    parts = split_settings(s, {"train": FinetuneConfig, "augment": AugmentConfig},
                           rest=RUN_KEYWORDS, others="options")
    return {"method": method, "options": parts["options"], "train": FinetuneConfig(**parts["train"]),
            "augment": parts["augment"], **parts["rest"]}


def _round_config(train: Optional[TrainConfig]) -> TrainConfig:
    """``train`` (default `FinetuneConfig()`), its log interval capped at one epoch and its
    schedule fitted to its epochs (`fit_schedule`)."""
    cfg = train if train is not None else FinetuneConfig()
    cap = cfg.iters_per_epoch or cfg.log_every
    return fit_schedule(dataclasses.replace(cfg, log_every=max(1, min(cfg.log_every, cap))))


def _train_transform(ck: dict, aug: AugmentConfig):
    from reidcli.data.transforms import build_train_transform

    return build_train_transform(aug, ck["pixel_mean"], ck["pixel_std"]), (aug.height, aug.width)


def _datasets(views: int, root: Path, recs: list, y: np.ndarray, transform, size,
              keep_all: bool = False) -> dict:
    from reidcli.data.loader import ImageDataset
    from reidcli.train.methods.uda import TwoViewDataset

    keep = np.arange(len(y)) if keep_all else np.flatnonzero(y >= 0)  # outliers (-1) are left out
    cls = TwoViewDataset if views == 2 else ImageDataset
    return {"target": cls(root, [recs[i] for i in keep], transform, labels=y[keep], size=size)}


def _run(method: str, kind: type, opts: MethodOptions, cfg: TrainConfig, ck: dict, data: dict, facts: dict,
         n_clusters: int, device: str, out: Path, *, inputs: list, augment: dict, resolved: dict) -> Path:
    from reidcli.io.atomic import forget_written, is_special, note_written, output_target, remove_stale_temporaries
    from reidcli.io.h5 import make_provenance
    from reidcli.train.dist import DistInfo
    from reidcli.train.engine import Engine
    from reidcli.train.hooks import log_path_for
    from reidcli.train.methods.base import EngineContext
    from reidcli.utils.device import resolve_device

    dev = resolve_device(device)
    mcfg = dict(ck["model_config"], pretrained="none")
    ctx = EngineContext(cfg=cfg, device=dev, dist=DistInfo(), num_classes=n_clusters, data=data,
                        facts={**facts, "model_config": mcfg, "method": method})
    params = {**opts.to_dict(), **facts, "config": resolved}
    meta = {"input_size": ck["input_size"], "pixel_mean": ck["pixel_mean"],
            "pixel_std": ck["pixel_std"], "provenance": make_provenance(inputs, cfg.seed, params=params),
            "augment": augment}
    if is_special(out):  # -o /dev/null or a FIFO: written once at the end, no side files
        Engine(kind(opts), cfg, out=out, meta=meta, ctx=ctx).fit()
        return out
    target = output_target(out)  # a symlink is followed: its target is replaced, the link kept
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    # a stale temporary of an earlier run (a link included) is removed, never written through
    if partial.is_symlink() or (os.path.lexists(partial) and not partial.is_dir()):
        partial.unlink()
    remove_stale_temporaries(partial)
    engine = Engine(kind(opts), cfg, out=partial, meta=meta, ctx=ctx, shown_out=out)
    try:
        engine.fit()
        os.replace(partial, target)
        note_written(out)
        if engine.log_path is not None and engine.log_path.exists():
            os.replace(engine.log_path, log_path_for(out))
        from reidcli.train.settings import config_path_for, write_config

        write_config(config_path_for(out), resolved, "finetune",
                     f"reid finetune: the resolved settings of {out.name}; rerun with --config {config_path_for(out).name}")
    finally:
        partial.unlink(missing_ok=True)
        forget_written(partial)  # the temporary's epoch checkpoints are no output
        if engine.log_path is not None:  # the hidden log of a round that failed (moved on success)
            engine.log_path.unlink(missing_ok=True)
    return out
