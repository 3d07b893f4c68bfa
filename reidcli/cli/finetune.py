"""`reid finetune`: one round of unsupervised domain adaptation on pseudo-labels.

Every tuning flag defaults to None and only the flags given reach the library, which fills
the rest from its dataclasses (`FinetuneConfig`, `AugmentConfig`, the method's options); the
help shows those defaults. A flag that is no option of the chosen --method is an error
(exit 2, bad usage), e.g. ``--alpha does not apply to --method pseudo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import CamRegex, Ckpt, Config, DataFormat, Device, Output, Recipe, Threads, Workers, command_settings, reid_command
from reidcli.cli.defaults import opt as _opt
from reidcli.cli.training import train_flag
from reidcli.data.transforms import AugmentConfig
from reidcli.train.config import FinetuneConfig as F
from reidcli.train.methods import DEFAULT_METHODS, methods_help
from reidcli.train.methods.options import (
    CamStyleOptions,
    JointOptions,
    KDOptions,
    MarOptions,
    MMTOptions,
    PseudoOptions,
)

_LOSS_METHODS = {"pseudo": PseudoOptions, "kd": KDOptions, "camstyle": CamStyleOptions, "joint": JointOptions}


@reid_command("finetune", may_replace=("ckpt",), side_files=(".log.jsonl", ".config.toml"))
def command(
    target: Annotated[Path, typer.Argument(help="Target dataset (its identity labels are never read).", exists=True)],
    ckpt: Ckpt,
    output: Output,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Pseudo-labels of the target train images (reid cluster); not for mar, optional for camstyle.", exists=True, dir_okay=False)] = None,
    method: Annotated[Optional[str], _opt("--method", "-m", help=methods_help("finetune"), shows=DEFAULT_METHODS["finetune"])] = None,
    ckpt2: Annotated[Optional[Path], typer.Option("--ckpt2", help="mmt: second source network (default: a copy of --ckpt's).", exists=True, dir_okay=False)] = None,
    source: Annotated[Optional[Path], typer.Option("--source", help="joint, camstyle: labelled source dataset.", exists=True)] = None,
    target_format: DataFormat = None,
    cam_regex: CamRegex = None,
    source_format: Annotated[Optional[str], typer.Option("--source-format", help="Layout of --source; auto-detected when omitted.")] = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", help="mar: labelled reference dataset (one agent per identity).", exists=True)] = None,
    reference_format: Annotated[Optional[str], typer.Option("--reference-format", help="Layout of --reference; auto-detected when omitted.")] = None,
    styled: Annotated[Optional[Path], typer.Option("--styled", help="Styled target images ('reid stylize apply'): each joins its original's pseudo-label (camstyle: its class).", exists=True, file_okay=False)] = None,
    epochs: Annotated[Optional[int], train_flag("epochs", of=F)] = None,
    iters_per_epoch: Annotated[Optional[int], train_flag("iters_per_epoch", of=F)] = None,
    lr: Annotated[Optional[float], train_flag("lr", of=F)] = None,
    weight_decay: Annotated[Optional[float], train_flag("weight_decay", of=F)] = None,
    weight_decay_all: Annotated[Optional[bool], _opt("--weight-decay-all/--no-weight-decay-all", help="Weight decay on every parameter, norms and biases too, as the MMT code (off: none on them, as fast-reid).", of=F, field="weight_decay_all")] = None,
    p: Annotated[Optional[int], train_flag("p", of=F)] = None,
    k: Annotated[Optional[int], train_flag("k", of=F)] = None,
    batch_size: Annotated[Optional[int], train_flag("batch_size")] = None,
    images_per_bn: Annotated[Optional[int], train_flag("images_per_bn", of=F)] = None,
    erasing: Annotated[Optional[float], train_flag("erasing", of=AugmentConfig)] = None,
    alpha: Annotated[Optional[float], _opt("--alpha", min=0.0, max=1.0, help="mmt: EMA momentum of the mean nets.", of=MMTOptions)] = None,
    soft_ce_weight: Annotated[Optional[float], _opt("--soft-ce-weight", min=0.0, max=1.0, help="mmt: weight of the soft CE.", of=MMTOptions)] = None,
    soft_tri_weight: Annotated[Optional[float], _opt("--soft-tri-weight", min=0.0, max=1.0, help="mmt: weight of the soft triplet.", of=MMTOptions)] = None,
    fresh_optimizer: Annotated[Optional[bool], _opt("--fresh-optimizer/--continue-optimizer", help="mmt: a new Adam each round, as the MMT code (--continue-optimizer: the previous round's moments go on).", of=MMTOptions, field="fresh_optimizer")] = None,
    kd_every: Annotated[Optional[int], _opt("--kd-every", min=1, help="kd: blend W toward W_int every N epochs (counted across rounds).", of=KDOptions)] = None,
    mu: Annotated[Optional[float], _opt("--mu", min=0.0, max=1.0, help="kd: W = (1 - mu) W + mu W_int.", of=KDOptions)] = None,
    theta: Annotated[Optional[float], _opt("--theta", min=0.0, help="joint, camstyle: weight of the source-vs-target triplet.", of=JointOptions)] = None,
    lambda_1: Annotated[Optional[float], _opt("--lambda-1", min=0.0, help="mar: weight of the cross-view loss (CML).", of=MarOptions)] = None,
    lambda_2: Annotated[Optional[float], _opt("--lambda-2", min=0.0, help="mar: weight of the reference agent loss (AL + beta RJ).", of=MarOptions)] = None,
    beta: Annotated[Optional[float], _opt("--beta", min=0.0, help="mar: weight of RJ inside the agent loss.", of=MarOptions)] = None,
    scale: Annotated[Optional[float], _opt("--scale", min=0.0, help="mar: softmax scale of the soft multilabels and AL.", of=MarOptions)] = None,
    rj_margin: Annotated[Optional[float], _opt("--rj-margin", min=0.0, help="mar: RJ margin (squared distance).", of=MarOptions)] = None,
    mining_ratio: Annotated[Optional[float], _opt("--mining-ratio", min=0.0, max=1.0, help="mar: fraction of a batch's pairs mined by MDL.", of=MarOptions)] = None,
    mdl_warmup_epochs: Annotated[Optional[int], _opt("--mdl-warmup-epochs", min=0, help="mar: epochs before MDL starts.", of=MarOptions)] = None,
    memory_start: Annotated[Optional[str], _opt("--memory-start", help="mar: when the soft-multilabel memory starts: mdl (with MDL, as the MAR code) | warmup (from the first epoch).", of=MarOptions)] = None,
    cml_target: Annotated[Optional[str], _opt("--cml-target", help="mar: CML target: batch (the batch's mean and std, the paper) | cameras (the mean of the cameras' means and stds, the MAR code).", of=MarOptions)] = None,
    margin: Annotated[Optional[float], _opt("--margin", min=0.0, help="pseudo, kd, joint, camstyle: triplet margin", of=_LOSS_METHODS)] = None,
    label_smooth: Annotated[Optional[float], _opt("--label-smooth", min=0.0, max=1.0, help="CE label smoothing", of={**_LOSS_METHODS, "mmt": MMTOptions})] = None,
    center_weight: Annotated[Optional[float], _opt("--center-weight", min=0.0, help="pseudo, kd, joint, camstyle: centre-loss weight", of=_LOSS_METHODS)] = None,
    seed: Annotated[Optional[int], train_flag("seed", of=F)] = None,
    recipe: Recipe = None,
    config: Config = None,
    device: Device = "auto",
    workers: Workers = None,
    threads: Threads = None,
    cache_images: Annotated[Optional[bool], train_flag("cache_images", of=F)] = None,
    amp: Annotated[Optional[bool], train_flag("amp", of=F)] = None,
) -> None:
    """Adapt a model to TARGET for one round, with the pseudo-labels of 'reid cluster'.

    Methods: pseudo (CE + triplet on the pseudo-labels), mmt (Mutual Mean-Teaching, two
    nets and their mean nets; the checkpoint carries all four and the next round continues
    them; 'reid features' uses the first mean net), kd (intermediate copy blended into the
    weights every --kd-every epochs), joint (labelled --source images and the target
    together), camstyle (LSTM-UDA 2021: source CE + a source-vs-target triplet in which each
    target image and its --styled versions are one class; --labels optional), mar (soft
    multilabels over the agents of a labelled --reference set; no --labels). Outliers (-1) are left out. -o may equal --ckpt: it is replaced only when
    the round has finished. A method's flag given with another --method is an error.

    Example: reid finetune --ckpt m.pt --labels labels.h5 duke/ -o m2.pt --method mmt
    """
    flags = dict(locals())  # the parameters only: taken before any other name is bound
    from reidcli.train.finetune import finetune_from_settings
    from reidcli.utils.progress import say

    parts = command_settings(flags, skip=("target", "ckpt", "labels", "output", "config"))
    say(f"wrote {finetune_from_settings(ckpt, labels, target, output, config=config, defaults=parts['defaults'], config_aliases=parts['config_aliases'], **parts['settings'])}")
