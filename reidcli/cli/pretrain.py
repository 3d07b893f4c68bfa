"""`reid pretrain DATA -o m.pt`: supervised training on a labelled source dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import DataFormat, Device, Output, Seed, Workers, reid_command

_M = "Model"
_T = "Training"
_L = "Losses"
_A = "Augmentation"
_R = "RBNet (--arch rbnet)"


def _opt(*names: str, help: str, panel: str, **kw):
    return typer.Option(*names, help=help, rich_help_panel=panel, **kw)


@reid_command("pretrain")
def command(
    data: Annotated[Path, typer.Argument(help="Labelled dataset folder (its train split is used).", exists=True)],
    output: Output,
    fmt: DataFormat = None,
    arch: Annotated[str, _opt("--arch", help="Backbone: tiny, resnet18/34/50/101, se_resnet50, resnet50_ibn_a.", panel=_M)] = "resnet50",
    pretrained: Annotated[str, _opt("--pretrained", help="imagenet | none | PATH of a backbone state dict.", panel=_M)] = "imagenet",
    last_stride: Annotated[int, _opt("--last-stride", help="Stride of layer4 (1 or 2).", panel=_M)] = 1,
    pooling: Annotated[str, _opt("--pooling", help="avg | gem | avgmax.", panel=_M)] = "avg",
    neck: Annotated[str, _opt("--neck", help="bnneck | none.", panel=_M)] = "bnneck",
    embed_dim: Annotated[int, _opt("--embed-dim", help="FC reduction of the feature (0 = none).", panel=_M)] = 0,
    attention: Annotated[bool, _opt("--attention", help="CBAM after layer2/3/4.", panel=_M)] = False,
    multilevel: Annotated[bool, _opt("--multilevel", help="Fuse layer1+3+4 pooled features.", panel=_M)] = False,
    lstm_branch: Annotated[bool, _opt("--lstm-branch", help="Bi-LSTM local branch over 3 stripes.", panel=_M)] = False,
    dropout: Annotated[float, _opt("--dropout", help="Dropout before the classifier.", panel=_M)] = 0.0,
    rb_backbone: Annotated[str, _opt("--rb-backbone", help="rbnet: its ResNet (resnet50, tiny, resnet18_half, ...).", panel=_R)] = "resnet50",
    rb_fuse: Annotated[str, _opt("--rb-fuse", help="rbnet: scales fused into the heat-maps (conv1,layer1..layer4).", panel=_R)] = "conv1,layer1",
    rb_mask_from: Annotated[str, _opt("--rb-mask-from", help="rbnet: maps that make the mask: layer1 (re-layer1) | conv1 | ... | heatmaps.", panel=_R)] = "layer1",
    rb_mask: Annotated[str, _opt("--rb-mask", help="rbnet: sigmoid | sum (normalised sum of the 17 maps).", panel=_R)] = "sigmoid",
    rb_mask_path: Annotated[str, _opt("--rb-mask-path", help="rbnet: paper (change_channel mask, reverse features fused into backbone 2, own BN) | simple.", panel=_R)] = "paper",
    rb_shared: Annotated[bool, _opt("--rb-shared/--rb-separate", help="rbnet: backbone 2 shares backbone 1's weights.", panel=_R)] = True,
    rb_feature: Annotated[str, _opt("--rb-feature", help="rbnet: inference feature: global | masked | both.", panel=_R)] = "global",
    pose: Annotated[Optional[Path], _opt("--pose", help="rbnet: pose file of the training images (reid extract-pose).", panel=_R, exists=True, dir_okay=False)] = None,
    mse_weight: Annotated[float, _opt("--mse-weight", help="rbnet: l3, heat-map MSE weight (-1 = auto: l3*MSE ~ l2*triplet).", panel=_R)] = -1.0,
    id2_weight: Annotated[float, _opt("--id2-weight", help="rbnet: l4, ID loss of the masked branch.", panel=_R)] = 1.0,
    triplet2_weight: Annotated[float, _opt("--triplet2-weight", help="rbnet: l5, triplet loss of the masked branch.", panel=_R)] = 1.0,
    heatmap_sigma: Annotated[float, _opt("--heatmap-sigma", help="rbnet: target Gaussian sigma (heat-map pixels).", panel=_R)] = 2.0,
    pose_min_score: Annotated[float, _opt("--pose-min-score", help="rbnet: mask keypoints scoring at or below this.", panel=_R)] = 0.3,
    height: Annotated[int, _opt("--height", help="Input height.", panel=_M)] = 256,
    width: Annotated[int, _opt("--width", help="Input width.", panel=_M)] = 128,
    epochs: Annotated[int, _opt("--epochs", help="Epochs in total.", panel=_T)] = 80,
    iters_per_epoch: Annotated[int, _opt("--iters-per-epoch", help="Steps per epoch (0 = one pass).", panel=_T)] = 0,
    max_iters: Annotated[int, _opt("--max-iters", help="Stop after this many steps (0 = off).", panel=_T)] = 0,
    stop_after: Annotated[int, _opt("--stop-after", help="Stop after N new epochs; resume later.", panel=_T)] = 0,
    optimizer: Annotated[str, _opt("--optimizer", help="adam | adamw | sgd.", panel=_T)] = "adam",
    lr: Annotated[float, _opt("--lr", help="Base learning rate.", panel=_T)] = 3.5e-4,
    weight_decay: Annotated[float, _opt("--weight-decay", help="Weight decay.", panel=_T)] = 5e-4,
    schedule: Annotated[str, _opt("--schedule", help="step | cosine | constant.", panel=_T)] = "step",
    milestones: Annotated[str, _opt("--milestones", help="Epochs of x gamma decay, comma-separated.", panel=_T)] = "40,70",
    gamma: Annotated[float, _opt("--gamma", help="Step decay factor.", panel=_T)] = 0.1,
    warmup_epochs: Annotated[float, _opt("--warmup-epochs", help="Linear warm-up epochs.", panel=_T)] = 10.0,
    p: Annotated[int, _opt("--ids-per-batch", "-P", help="Identities per batch (P of P x K).", panel=_T)] = 16,
    k: Annotated[int, _opt("--images-per-id", "-K", help="Images per identity (K of P x K).", panel=_T)] = 4,
    images_per_bn: Annotated[int, _opt("--images-per-bn", help="BN statistics over groups of N images (0 = batch).", panel=_T)] = 16,
    sync_bn: Annotated[bool, _opt("--sync-bn/--no-sync-bn", help="SyncBN under DDP on CUDA.", panel=_T)] = True,
    amp: Annotated[bool, _opt("--amp/--no-amp", help="Mixed precision on CUDA.", panel=_T)] = True,
    eval_every: Annotated[int, _opt("--eval-every", help="Evaluate query/gallery every N epochs.", panel=_T)] = 0,
    resume: Annotated[bool, _opt("--resume", help="Continue the run in OUTPUT where it stopped.", panel=_T)] = False,
    target: Annotated[Optional[Path], _opt("--target", help="Unlabelled target images for BN statistics.", panel=_T, exists=True)] = None,
    domain_bn: Annotated[bool, _opt("--domain-bn", help="Separate source/target BN (needs --target).", panel=_T)] = False,
    label_smooth: Annotated[float, _opt("--label-smooth", help="Label smoothing epsilon.", panel=_L)] = 0.1,
    margin: Annotated[float, _opt("--margin", help="Triplet margin.", panel=_L)] = 0.3,
    soft_margin: Annotated[bool, _opt("--soft-margin", help="Soft-margin triplet.", panel=_L)] = False,
    ce_weight: Annotated[float, _opt("--ce-weight", help="Weight of the ID loss.", panel=_L)] = 1.0,
    triplet_weight: Annotated[float, _opt("--triplet-weight", help="Weight of the triplet loss.", panel=_L)] = 1.0,
    center_weight: Annotated[float, _opt("--center-weight", help="Centre loss weight (0 = off; 0.0035).", panel=_L)] = 0.0,
    center_lr: Annotated[float, _opt("--center-lr", help="SGD lr of the centres.", panel=_L)] = 0.5,
    flip: Annotated[float, _opt("--flip", help="Horizontal flip probability.", panel=_A)] = 0.5,
    pad: Annotated[int, _opt("--pad", help="Padding before random crop (0 = off).", panel=_A)] = 10,
    resized_crop: Annotated[bool, _opt("--resized-crop", help="RandomResizedCrop instead of pad+crop.", panel=_A)] = False,
    jitter: Annotated[float, _opt("--jitter", help="Colour-jitter strength (0 = off).", panel=_A)] = 0.0,
    erasing: Annotated[float, _opt("--erasing", help="Random erasing probability.", panel=_A)] = 0.5,
    seed: Seed = 0,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Deterministic kernels.")] = False,
    workers: Workers = 4,
    device: Device = "auto",
) -> None:
    """Train a re-ID network on the labelled train split of DATA (ID + triplet loss) and write
    a self-describing checkpoint after every epoch (resumable with --resume). Under
    'torchrun --nproc_per_node N' it trains with DDP.

    With --arch rbnet (METHODS.md 1) the reverse backbone learns heat-maps of the --pose
    keypoints and a second pass on the masked image adds ID2 + triplet2 losses.

    Example: reid pretrain data/market -o m.pt --arch resnet50 --epochs 80
    """
    from reidcli.data.transforms import AugmentConfig
    from reidcli.models import ModelConfig
    from reidcli.train.config import TrainConfig
    from reidcli.train.pretrain import pretrain
    from reidcli.utils.progress import say

    L = locals()
    mcfg = ModelConfig(**{f: L[f] for f in ("arch", "pretrained", "last_stride", "pooling", "neck", "embed_dim",
                                            "attention", "multilevel", "lstm_branch", "dropout")})
    if arch == "rbnet":
        mcfg.rbnet = {"backbone": rb_backbone, "fuse": [v.strip() for v in rb_fuse.split(",") if v.strip()],
                      "mask_from": rb_mask_from, "mask_path": rb_mask_path, "mask": rb_mask, "shared": rb_shared, "feature": rb_feature}
    tcfg = TrainConfig(milestones=_ints(milestones), **{f: L[f] for f in (
        "epochs", "iters_per_epoch", "max_iters", "stop_after", "optimizer", "lr", "weight_decay", "schedule",
        "gamma", "warmup_epochs", "p", "k", "images_per_bn", "sync_bn", "amp", "seed", "deterministic",
        "workers", "eval_every")})
    aug = AugmentConfig(**{f: L[f] for f in ("height", "width", "flip", "pad", "resized_crop", "jitter", "erasing")})
    losses = {f: L[f] for f in ("label_smooth", "margin", "soft_margin", "ce_weight", "triplet_weight",
                                "center_weight", "center_lr")}
    if arch == "rbnet":
        losses.update({f: L[f] for f in ("mse_weight", "id2_weight", "triplet2_weight", "heatmap_sigma",
                                         "pose_min_score")})
    out = pretrain(data, output, model=mcfg, train=tcfg, augment=aug, method_options=losses, format=fmt,
                   target=target, domain_bn=domain_bn, resume=resume, device=device, pose=pose)
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun, not one per process
        say(f"wrote {out}")


def _ints(text: str) -> list[int]:
    from reidcli.utils.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--milestones must be comma-separated epochs like 40,70; got {text!r}") from None
