"""Library entry of ``reid pretrain``: supervised training on a labelled dataset -> m.pt.

>>> from reidcli.models import ModelConfig
>>> from reidcli.train.config import TrainConfig
>>> from reidcli.train.pretrain import pretrain
>>> pretrain("data/market", "m.pt", model=ModelConfig(arch="tiny"),
...          train=TrainConfig(epochs=2))                     # doctest: +SKIP

`pretrain_from_settings` takes the same settings flat, one keyword per config field (the
``reid pretrain`` flags), and builds the configs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional

from reidcli.data.records import Dataset, describe_fingerprint, fingerprint, relabel
from reidcli.data.transforms import AugmentConfig, build_train_transform
from reidcli.io.ckpt import IMAGENET_MEAN, IMAGENET_STD, load_checkpoint
from reidcli.train import dist as D
from reidcli.train.config import TrainConfig, fit_schedule
from reidcli.train.hooks import HookBase
from reidcli.train.methods.options import MethodOptions
from reidcli.train.settings import config_path_for, flat_settings, write_config
from reidcli.utils.errors import ConfigError, InputError

log = logging.getLogger(__name__)
# Settings a resumed run may change; everything else comes from the checkpoint.
RESUME_OVERRIDES = ("epochs", "max_iters", "stop_after", "workers", "threads", "cache_images", "eval_every",
                    "log_every")
# keywords of `pretrain` itself among the flat settings of `pretrain_from_settings`
RUN_KEYWORDS = ("method", "format", "cam_regex", "target", "domain_bn", "resume", "device", "pose")


def pretrain(data: str | os.PathLike | Dataset, out: str | os.PathLike, *, model, train: TrainConfig,
             augment: Optional[AugmentConfig] = None, method: Optional[str] = None,
             options: MethodOptions | Mapping[str, Any] | None = None, format: Optional[str] = None,
             cam_regex: Optional[str] = None, target: str | os.PathLike | Dataset | None = None,
             domain_bn: bool = False,
             resume: bool = False, device: str = "auto",
             pose: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None) -> Path:
    """Train ``model`` (a `ModelConfig`) on the ``train`` split of ``data``; write ``out``.

    Args:
        data: a dataset folder (layout auto-detected, or ``format``) or a loaded `Dataset`.
        cam_regex: folder / unlabelled layouts (``data`` and ``target``): each image's camera
            is this regex's first group matched against its relative path (`load_datasets`).
        out: the checkpoint, rewritten atomically after every epoch.
        train, augment: engine and augmentation settings.
        method, options: the training method and its options object (`SupervisedOptions`
            for 'supervised') or a dict of its fields; None: its defaults.
        target: unlabelled target images forwarded each step so BN adapts (MMT pretrainer).
        domain_bn: separate BN for source and target (needs ``target``).
        resume: continue from ``out`` where it stopped (same config, more epochs allowed).
        device: auto | cpu | cuda | cuda:N.
        pose: keypoints of the training images (arch 'rbnet': heat-map targets).
        config_file: the ``--config`` file the settings came from (recorded in the provenance).

    The resolved settings (every field, as flat settings) are written beside ``out`` as
    ``<stem>.config.toml`` (`reidcli.train.settings.config_path_for`; ``--config`` reads it
    back) once the first epoch's checkpoint is written (a run that fails before leaves none) and recorded in the provenance (``params.config``). An ``out`` that is a device
    node or a FIFO (``-o /dev/null``) gets no side files (no log, no config) and is written
    once, after the last epoch.
    """
    import torch

    from reidcli.data.layouts import load_datasets
    from reidcli.train.engine import Engine
    from reidcli.train.methods import DEFAULT_METHODS, method_options, resolve_method
    from reidcli.train.methods.base import EngineContext
    from reidcli.utils.device import resolve_device
    from reidcli.utils.seed import seed_everything

    out = Path(out)
    kind = resolve_method(method, "pretrain")
    method = method or DEFAULT_METHODS["pretrain"]
    opts = method_options(method, options, method_class=kind)
    aug = (augment or AugmentConfig()).validate()
    ck = _resume_checkpoint(out) if resume else None
    if ck is not None:
        _check_resumed_settings(out, ck, model, aug, method)
    model, train = _configs(model, train, ck)
    _check(model, train, aug, target, domain_bn)
    dev = resolve_device(device)
    info = D.from_env()
    dev = D.device_for(info, dev)
    info = D.init(dev)
    try:
        seed_everything(train.seed, train.deterministic)
        data_ds, target_ds = load_datasets([(data, format), (target, None)], cam_regex=cam_regex)
        src, num_classes, ds = _source(data_ds, aug)
        tgt = _target(target_ds, aug) if target is not None else None
        train_data = {"data": fingerprint(ds.root, src.records)}
        if tgt is not None:
            train_data["target"] = fingerprint(target_ds.root, tgt.records)
        if ck is not None:
            check_resumed_data(out, ck, train_data)
        if pose is not None or model.arch == "rbnet":
            from reidcli.data.pose_targets import check_pose_options

            src = check_pose_options(model, pose, opts.to_dict(), src, aug)
        domains = ["source", "target"] if domain_bn else []
        ctx = EngineContext(cfg=train, device=dev, dist=info, num_classes=num_classes,
                            data={"source": src, "target": tgt},
                            facts={"model_config": dataclasses.asdict(model), "bn_domains": domains})
        resolved = flat_settings({"model": model, "train": train, "augment": aug, "options": opts,
                                  "method": method, "format": format, "cam_regex": cam_regex,
                                  "target": target, "domain_bn": domain_bn,
                                  "device": device, "pose": pose})
        resolved = applying_settings(resolved, model.arch)
        config_path = config_path_for(out)
        hooks = [_ConfigWriter(config_path, resolved, out.name)] if config_path is not None else []
        meta = {"input_size": [aug.height, aug.width], "pixel_mean": IMAGENET_MEAN,
                "pixel_std": IMAGENET_STD,
                "provenance": _provenance(ds, train, model, opts.to_dict(), resolved, config_file),
                "augment": dataclasses.asdict(aug), "extra": {"train_data": train_data}}
        evaluate = _eval_fn(ds, aug, train, dev) if train.eval_every else None
        engine = Engine(kind(opts), train, out=out, meta=meta, ctx=ctx,
                        bn_domains=domains, evaluate=evaluate, hooks=hooks)
        torch.backends.cudnn.benchmark = not train.deterministic
        engine.setup()  # the method's checks of the data (e.g. mrda's modalities) before any file is written
        engine.fit(resume=ck)  # the resolved config is written with the first checkpoint (_ConfigWriter)
    finally:
        D.shutdown(info)
    return out


class _ConfigWriter(HookBase):
    """Write the resolved settings beside the checkpoint once its first epoch is written (rank
    0), so that a run failing before it (a full disk, ``ulimit -f``, a bad image) leaves no
    ``m.config.toml`` describing a checkpoint that was never written, or describing another run's
    ``m.pt``."""

    def __init__(self, path: Path, resolved: Mapping[str, Any], name: str):
        self.path, self.resolved, self.name, self.done = path, resolved, name, False

    def after_checkpoint(self) -> None:
        if not self.done:
            write_config(self.path, self.resolved, "pretrain",
                         f"reid pretrain: the resolved settings of {self.name}; rerun with --config {self.path.name}")
        self.done = True


def pretrain_from_settings(data: str | os.PathLike | Dataset, out: str | os.PathLike, *,
                           recipe: Optional[str] = None, config: str | os.PathLike | None = None,
                           config_aliases: Optional[Mapping[str, str]] = None,
                           defaults: Optional[Mapping[str, Any]] = None, **settings: Any) -> Path:
    """`pretrain` from flat keyword settings (the ``reid pretrain`` flags): see
    `pretrain_arguments`. ``config`` names a TOML file of more settings (any setting or flag
    as a key, `reidcli.train.settings.read_config` with ``config_aliases``; it may name a
    ``recipe``); ``recipe`` names a paper recipe (`reidcli.recipes`); ``defaults`` are
    settings that anything else overrides (the CLI's own flag defaults). Precedence:
    ``settings`` > ``config`` > ``defaults``, then the recipe fills what none of them sets;
    ``batch_size`` and ``p`` are one setting there (`reidcli.train.settings.over`): the
    command line's ``--batch-size`` replaces a file's or a recipe's ``p``."""
    from reidcli.models import ModelConfig
    from reidcli.train.settings import over, over_recipe, read_config, recipe_schedule

    file = read_config(config, "pretrain", config_aliases) if config is not None else {}
    recipe = recipe if recipe is not None else file.get("recipe")
    file.pop("recipe", None)
    given = over(file, settings)
    named = dict(given)  # what the command line and the config file set
    if given.get("resume"):  # what is not given comes from the checkpoint, not from the defaults
        given = _resumed_settings(Path(out), given)
    merged = over_recipe(recipe, "pretrain", over(defaults or {}, given))
    check_arch_settings(named, merged.get("arch") or ModelConfig.arch)
    args = pretrain_arguments(merged)
    # fitted as the first run fitted it; a resumed run then keeps the checkpoint's schedule and
    # says so only when the command line asked for another one
    args["train"] = fit_schedule(args["train"], given, recipe_schedule(recipe, "pretrain", TrainConfig),
                                 announce=not given.get("resume"))
    return pretrain(data, out, **args, config_file=config)


# settings of one architecture only: ``rb_*`` and RBNet's loss terms, ``mrda_*``
ARCH_SETTINGS = {"rbnet": ("rb_", ("mse_weight", "id2_weight", "triplet2_weight", "heatmap_sigma", "pose_min_score")),
                 "mrda": ("mrda_", ())}


def check_arch_settings(given: Mapping[str, Any], arch: str) -> None:
    """A `ParamError` for a setting ``given`` (not None) that only another architecture reads
    (``rb_backbone`` with arch resnet50): it would be ignored."""
    from reidcli.utils.params import reject_given

    for owner, (prefix, names) in ARCH_SETTINGS.items():
        mine = [k for k in given if k.startswith(prefix) or k in names]
        reject_given(given, mine, applies=arch == owner,
                     what=f"to --arch {arch}; it is an {'RBNet' if owner == 'rbnet' else 'MRDA'} setting (--arch {owner})")


def applying_settings(settings: Mapping[str, Any], arch: str) -> dict[str, Any]:
    """``settings`` without those only another architecture reads (`ARCH_SETTINGS`), so the
    resolved config of a run repeats it (`check_arch_settings` refuses them when given)."""
    other = [(prefix, names) for owner, (prefix, names) in ARCH_SETTINGS.items() if owner != arch]
    return {k: v for k, v in settings.items()
            if not any(k.startswith(prefix) or k in names for prefix, names in other)}


def pretrain_arguments(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `pretrain` from flat settings, each the name of a field of
    `ModelConfig`, `TrainConfig`, `AugmentConfig` or the method's options (`SupervisedOptions`),
    ``rb_<field>`` of `reidcli.models.rbnet_options.RBNetOptions` (used with ``arch='rbnet'``),
    ``mrda_<field>`` of `reidcli.models.mrda_options.MrdaNetOptions` (``arch='mrda'``),
    ``batch_size`` (images per batch: P = batch_size / K), or a keyword of `pretrain`
    (``method``, ``format``, ``target``, ...). ``milestones`` may be
    a comma-separated string. Fields not given keep their dataclass defaults.

    Raises:
        ParamError: a setting that none of these has.
    """
    from reidcli.models import ModelConfig
    from reidcli.train.methods import resolve_method
    from reidcli.train.settings import batch_size_to_p, parse_ints, split_settings

    s = batch_size_to_p(settings, TrainConfig)
    rb = {k[len("rb_"):]: s.pop(k) for k in list(s) if k.startswith("rb_")}
    mrda = {k[len("mrda_"):]: s.pop(k) for k in list(s) if k.startswith("mrda_")}
    if "milestones" in s:
        s["milestones"] = parse_ints(s["milestones"], "milestones")
    kind = resolve_method(s.get("method"), "pretrain").Options
    parts = split_settings(s, {"model": ModelConfig, "train": TrainConfig, "augment": AugmentConfig,
                               "options": kind}, rest=RUN_KEYWORDS, what="reid pretrain")
    model = ModelConfig(**parts["model"])
    if model.arch == "rbnet" and rb:
        if isinstance(rb.get("fuse"), str):
            rb["fuse"] = [v.strip() for v in rb["fuse"].split(",") if v.strip()]
        model.rbnet = rb
    if mrda:
        model.mrda = mrda
    return {"model": model, "train": TrainConfig(**parts["train"]), "augment": AugmentConfig(**parts["augment"]),
            "options": kind(**parts["options"]), **parts["rest"]}


def _resume_checkpoint(out: Path) -> Optional[dict]:
    if not out.exists():
        log.warning("--resume: %s does not exist yet; starting from scratch", out)
        return None
    ck = load_checkpoint(out)
    if not ck.get("train_state"):
        raise InputError(f"{out} holds no training state (written without it); cannot --resume, "
                         "drop --resume to start over")
    _check_pretrain_checkpoint(out, ck)
    return ck


def _check_pretrain_checkpoint(out: Path, ck: dict) -> None:
    """``--resume`` continues a ``reid pretrain`` run only: not a finetune round's checkpoint."""
    from reidcli.train.methods import DEFAULT_METHODS, STAGES, TRAINING_METHODS, method_stage

    method = ck.get("method", DEFAULT_METHODS["pretrain"])
    stage = method_stage(method) if method in TRAINING_METHODS.names() else "pretrain"
    if stage != "pretrain":
        raise InputError(f"--resume: {out} was written by --method {method} ({STAGES[stage][0]}), not by "
                         "'reid pretrain'; give a new -o (or drop --resume), or continue it with 'reid finetune'")


# the datasets a run trains on (``train_data`` of its checkpoints) and how the command names them
DATA_ROLES = {"data": "DATA", "target": "--target"}


def check_resumed_data(out: Path, ck: dict, now: Mapping[str, dict], roles: Mapping[str, str] = DATA_ROLES) -> None:
    """Refuse to resume ``out`` (checkpoint ``ck``) on other training data than it was started
    on: ``now`` and the checkpoint's ``train_data`` map a role (``data``, ``target``; ``roles``
    names each as the command does) to a `reidcli.data.records.fingerprint`; images, identities
    and the digest must agree (the folder may have moved). Checkpoints written before
    ``train_data`` existed are not checked."""
    saved = ck.get("train_data")
    if not isinstance(saved, dict):
        return
    for role, flag in roles.items():
        old, new = saved.get(role), now.get(role)
        if old is None and new is None:
            continue
        if isinstance(old, dict) and new is not None and all(
                type(old.get(k)) is type(new[k]) and old.get(k) == new[k] for k in ("images", "identities", "digest")):
            continue
        if old is None and flag.startswith("--"):  # an optional input the run was started without
            what = f"was started without {flag}, not with {flag} {describe_fingerprint(new)}; leave {flag} out " \
                   "to continue the run, or"
        elif not isinstance(old, dict):  # a damaged or crafted record: nothing to compare with
            what = f"holds no readable record of its {flag} (train_data['{role}']), so it cannot be continued;"
        elif new is None:
            what = f"was started with {flag} {describe_fingerprint(old)}; give it again to continue the run, or"
        else:
            what = (f"was started on {flag} {describe_fingerprint(old)}, not on {describe_fingerprint(new)}; give "
                    f"that {flag} to continue the run, or")
        raise InputError(f"--resume: {out} {what} drop --resume (or give a new -o) to start a new run")


# model fields a resumed run does not compare: set by the data (classes) or only at the start
_MODEL_UNCOMPARED = ("num_classes", "pretrained")


def _resumed_settings(out: Path, settings: dict) -> dict:
    """With ``resume``: the model and data settings not given, taken from the checkpoint in
    ``out`` (so resuming needs no flag repeated, and a flag given differently is refused by
    `_check_resumed_settings`)."""
    if not out.is_file():
        return settings
    ck = load_checkpoint(out)
    if not ck.get("train_state"):
        return settings
    _check_pretrain_checkpoint(out, ck)
    from reidcli.models import ModelConfig
    from reidcli.train.methods import DEFAULT_METHODS

    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"rbnet", "mrda", *_MODEL_UNCOMPARED}
    stored = {k: v for k, v in ck["model_config"].items() if k in fields}
    stored.update({k: v for k, v in (ck.get("augment") or {}).items()
                   if k in {f.name for f in dataclasses.fields(AugmentConfig)}})
    stored.update({f"mrda_{k}": v for k, v in (ck["model_config"].get("mrda") or {}).items()})
    stored.update({f"rb_{k}": v for k, v in (ck["model_config"].get("rbnet") or {}).items()})
    stored["method"] = ck.get("method", DEFAULT_METHODS["pretrain"])
    return {**{k: v for k, v in stored.items() if k not in settings}, **settings}


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def _check_resumed_settings(out: Path, ck: dict, model, aug: AugmentConfig, method: str) -> None:
    """Refuse to resume ``out`` with model or data settings other than those it was trained
    with (a new --arch would be ignored and a new --height applied: a broken run)."""
    saved_model = ck["model_config"]
    differ = []
    for k, v in dataclasses.asdict(model).items():
        if k in _MODEL_UNCOMPARED or k not in saved_model:
            continue
        if isinstance(v, dict):  # rbnet / mrda options: those given that differ
            old = saved_model.get(k) or {}
            differ += [(f"{k}.{n}", old[n], x) for n, x in v.items() if n in old and _plain(old[n]) != _plain(x)]
        elif _plain(saved_model[k]) != _plain(v):
            differ.append((k, saved_model[k], v))
    saved_aug = ck.get("augment") or {"height": ck["input_size"][0], "width": ck["input_size"][1]}
    differ += [(k, saved_aug[k], v) for k, v in dataclasses.asdict(aug).items()
               if k in saved_aug and _plain(saved_aug[k]) != _plain(v)]
    if ck.get("method", method) != method:
        differ.append(("method", ck["method"], method))
    if differ:
        listed = ", ".join(f"{k} {new!r} (was {old!r})" for k, old, new in differ)
        raise ConfigError(f"--resume: {out} was trained with other model or data settings: {listed}; "
                          "give the checkpoint's settings, or a new -o (or no --resume) to start over")


def _configs(model, train: TrainConfig, ck: Optional[dict]):
    """The model and training configs of the run: ``train`` with its schedule fitted to its
    epochs (`fit_schedule`), or on resume the checkpoint's, with the settings a resumed run
    may change."""
    if ck is None:
        return model, fit_schedule(train)
    from reidcli.models import ModelConfig

    saved = ck["train_state"]["config"]
    differ = [k for k, v in train.to_dict().items()
              if k not in RESUME_OVERRIDES and k in saved and saved[k] != v]
    if differ:
        log.warning("--resume: using the checkpoint's %s (the command line differs)", ", ".join(differ))
    merged = TrainConfig.from_dict({**saved, **{k: getattr(train, k) for k in RESUME_OVERRIDES}})
    stored = dict(ck["model_config"], num_classes=0, pretrained="none")
    return ModelConfig.from_dict(stored), merged.validate()


def _check(model, train: TrainConfig, aug: AugmentConfig, target, domain_bn: bool) -> None:
    from reidcli.models import check_input_size

    model.validate()
    check_input_size(model, aug.height, aug.width)
    if domain_bn and target is None:
        raise ConfigError("--domain-bn needs --target DIR (unlabelled target images to route through "
                          "the target BN layers)")


def _source(ds: Dataset, aug: AugmentConfig):
    """The labelled training images of ``ds``, their 0-based labels and ``ds``."""
    from reidcli.data.loader import ImageDataset

    recs = [r for r in ds.split("train") if r.pid >= 0]
    labels, mapping = relabel([r.pid for r in recs])
    if len(mapping) < 2:
        n = len(mapping)
        raise InputError(f"{ds.root}: the train split has {n} labelled identit{'y' if n == 1 else 'ies'}; "
                         "training needs at least 2 (ID loss and triplet pairs, or one agent each for "
                         "--method agents): pass a dataset with identity labels")
    dset = ImageDataset(ds.root, recs, build_train_transform(aug), labels=labels,
                        size=(aug.height, aug.width))
    log.info("training on %d images of %d identities from %s", len(recs), len(mapping), ds.root)
    return dset, len(mapping), ds


def _target(ds: Dataset, aug: AugmentConfig):
    from reidcli.data.loader import ImageDataset

    recs = ds.splits.get("train") or [r for s in ds.splits.values() for r in s]
    if not recs:
        raise InputError(f"{ds.root}: no target images found")
    return ImageDataset(ds.root, recs, build_train_transform(aug), labels=[-1] * len(recs),
                        size=(aug.height, aug.width))


def _provenance(ds: Dataset, train: TrainConfig, model, options: Optional[dict], resolved: dict,
                config_file=None) -> list:
    from reidcli.io.h5 import make_provenance

    inputs = [model.pretrained] if model.pretrained not in ("none", "imagenet") else []
    inputs += [config_file] if config_file is not None else []
    return make_provenance(inputs, seed=train.seed, params={
        "data": str(ds.root), "dataset_format": ds.format, "train": train.to_dict(),
        "model": dataclasses.asdict(model), "method_options": dict(options or {}), "config": resolved})


def _eval_fn(ds: Dataset, aug: AugmentConfig, train: TrainConfig, dev):
    """``fn(model) -> {"mAP", "rank1"}`` on the dataset's query/gallery, or None without them."""
    if "query" not in ds.splits or "gallery" not in ds.splits:
        log.warning("--eval-every: %s has no query/gallery splits; evaluation is skipped", ds.root)
        return None

    def run(model) -> dict:
        from reidcli.eval.api import evaluate
        from reidcli.features import embed_records

        feats = {s: embed_records(model, ds.root, ds.split(s), size=(aug.height, aug.width),
                                  batch_size=train.p * train.k, workers=train.workers, device=dev)
                 for s in ("query", "gallery")}
        q, g = ({"features": feats[s][0], **_ids(ds, s)} for s in ("query", "gallery"))
        res = evaluate(q, g, dataset_format=ds.format, normalized=True)
        return {"mAP": res.mean["mAP"], "rank1": res.mean["rank1"]}

    return run


def _ids(ds: Dataset, split: str) -> dict:
    _, pids, camids, modality = ds.arrays(split)
    return {"pids": pids, "camids": camids, "modality": modality}
