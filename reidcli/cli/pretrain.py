"""`reid pretrain DATA -o m.pt`: supervised training on a labelled source dataset.

Tuning flags default to None and only the flags given reach the library
(`reidcli.train.pretrain.pretrain_from_settings`), which fills the rest from its dataclasses
(`ModelConfig`, `TrainConfig`, `AugmentConfig`, `SupervisedOptions`); the help shows those
defaults. The --rb-* flags fill ``ModelConfig.rbnet`` with --arch rbnet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import CamRegex, Config, DataFormat, Device, Output, Recipe, Threads, Workers, command_settings, reid_command
from reidcli.cli.defaults import opt
from reidcli.cli.training import train_flag
from reidcli.data.transforms import AugmentConfig as A
from reidcli.models import ModelConfig as M
from reidcli.models import arch_help
from reidcli.models.mrda_options import MrdaNetOptions as MN
from reidcli.models.rbnet_options import RBNetOptions as RB
from reidcli.train.config import TrainConfig as T
from reidcli.train.methods import DEFAULT_METHODS, methods_help
from reidcli.train.methods.options import AgentsOptions
from reidcli.train.methods.options import MrdaOptions as X
from reidcli.train.methods.options import SupervisedOptions as L

_M, _T, _L, _A, _R = "Model", "Training", "Losses", "Augmentation", "RBNet (--arch rbnet)"
_X = "MRDA (--method mrda --arch mrda)"
Bool, Float, Int, Str = Optional[bool], Optional[float], Optional[int], Optional[str]


def _rb(*names: str, help: str, field: str):
    return opt(*names, help="rbnet: " + help, of=RB, field=field, rich_help_panel=_R)


@reid_command("pretrain", path_inputs=("pretrained",), side_files=(".log.jsonl", ".config.toml"))
def command(
    data: Annotated[Path, typer.Argument(help="Labelled dataset folder (its train split is used).", exists=True)],
    output: Output,
    fmt: DataFormat = None,
    cam_regex: CamRegex = None,
    arch: Annotated[Str, opt("--arch", help=arch_help(), of=M, rich_help_panel=_M)] = None,
    pretrained: Annotated[str, typer.Option("--pretrained", help="imagenet | none | PATH of a backbone state dict (the library's default is none).", rich_help_panel=_M)] = "imagenet",
    last_stride: Annotated[Int, opt("--last-stride", help="Stride of layer4 (1 or 2).", of=M, rich_help_panel=_M)] = None,
    stem_relu: Annotated[Bool, opt("--stem-relu/--no-stem-relu", help="ResNet: the ReLU after the stem's BN (--no-stem-relu: the MMT code's ResNet, conv1, bn1, max-pool).", of=M, field="stem_relu", rich_help_panel=_M)] = None,
    pooling: Annotated[Str, opt("--pooling", help="avg | gem | avgmax.", of=M, rich_help_panel=_M)] = None,
    neck: Annotated[Str, opt("--neck", help="bnneck | none.", of=M, rich_help_panel=_M)] = None,
    embed_dim: Annotated[Int, opt("--embed-dim", help="FC from the pooled feature to this size (0 = keep the pooled size: layer4's, or with --multilevel the fused one).", of=M, rich_help_panel=_M)] = None,
    attention: Annotated[Bool, opt("--attention", help="CBAM after layer2/3/4.", of=M, rich_help_panel=_M)] = None,
    multilevel: Annotated[Bool, opt("--multilevel", help="Multi-level fusion (Zhang et al. 2020): layer1, layer3 and layer4 pooled and concatenated.", of=M, rich_help_panel=_M)] = None,
    lstm_branch: Annotated[Bool, opt("--lstm-branch", help="Bi-LSTM local branch over 3 stripes.", of=M, rich_help_panel=_M)] = None,
    dropout: Annotated[Float, opt("--dropout", help="Dropout before the classifier.", of=M, rich_help_panel=_M)] = None,
    rb_backbone: Annotated[Str, _rb("--rb-backbone", help="its ResNet (resnet50; tiny = resnet18, resnet18_half for CPU runs).", field="backbone")] = None,
    rb_fuse: Annotated[Str, _rb("--rb-fuse", help="scales fused into the heat-maps (conv1,layer1..layer4).", field="fuse")] = None,
    rb_mask_from: Annotated[Str, _rb("--rb-mask-from", help="maps that make the mask: layer1 (re-layer1) | conv1 | ... | heatmaps.", field="mask_from")] = None,
    rb_mask: Annotated[Str, _rb("--rb-mask", help="sigmoid | sum (normalised sum of the 17 maps).", field="mask")] = None,
    rb_mask_path: Annotated[Str, _rb("--rb-mask-path", help="paper (change_channel mask, reverse features fused into backbone 2, own BN) | simple.", field="mask_path")] = None,
    rb_shared: Annotated[Bool, _rb("--rb-shared/--rb-separate", help="backbone 2 shares backbone 1's weights.", field="shared")] = None,
    rb_feature: Annotated[Str, _rb("--rb-feature", help="inference feature: global | masked | both.", field="feature")] = None,
    pose: Annotated[Optional[Path], typer.Option("--pose", help="rbnet: pose file of the training images (reid extract-pose).", rich_help_panel=_R, exists=True, dir_okay=False)] = None,
    mse_weight: Annotated[Float, opt("--mse-weight", help="rbnet: l3, heat-map MSE weight (-1 = auto: l3*MSE ~ l2*triplet).", of=L, rich_help_panel=_R)] = None,
    id2_weight: Annotated[Float, opt("--id2-weight", help="rbnet: l4, ID loss of the masked branch.", of=L, rich_help_panel=_R)] = None,
    triplet2_weight: Annotated[Float, opt("--triplet2-weight", help="rbnet: l5, triplet loss of the masked branch.", of=L, rich_help_panel=_R)] = None,
    heatmap_sigma: Annotated[Float, opt("--heatmap-sigma", help="rbnet: target Gaussian sigma (heat-map pixels).", of=L, rich_help_panel=_R)] = None,
    pose_min_score: Annotated[Float, opt("--pose-min-score", help="rbnet: mask keypoints scoring at or below this.", of=L, rich_help_panel=_R)] = None,
    method: Annotated[Str, opt("--method", help="Training method: " + methods_help("pretrain"), shows=DEFAULT_METHODS["pretrain"], rich_help_panel=_T)] = None,
    mrda_backbone: Annotated[Str, opt("--mrda-backbone", help="mrda: its ResNet (resnet50; resnet18_half for CPU runs).", of=MN, field="backbone", rich_help_panel=_X)] = None,
    mrda_attn_topk: Annotated[Int, opt("--attn-topk", help="mrda: stripes kept by the dynamic attention (the paper gives no k).", of=MN, field="attn_topk", rich_help_panel=_X)] = None,
    mrda_two_stream: Annotated[Bool, opt("--two-stream/--one-stream", help="mrda: separate visible and infrared stages 0-1 (--one-stream: one stem for both, an ablation).", of=MN, field="two_stream", rich_help_panel=_X)] = None,
    mrda_attention: Annotated[Bool, opt("--dyn-attention/--no-dyn-attention", help="mrda: the dynamic attention term of F (eq. 16; off: F = GeM(f), an ablation).", of=MN, field="attention", rich_help_panel=_X)] = None,
    id_weight: Annotated[Float, opt("--id-weight", help="mrda: label-smoothed ID loss (eq. 18).", of=X, rich_help_panel=_X)] = None,
    hc_weight: Annotated[Float, opt("--hc-weight", help="mrda: hetero-centre triplet loss (eq. 20).", of=X, rich_help_panel=_X)] = None,
    rho: Annotated[Float, opt("--rho", help="mrda: hetero-centre triplet margin.", of=X, rich_help_panel=_X)] = None,
    hc_reduction: Annotated[Str, opt("--hc-reduction", help="mrda: the hetero-centre terms of the 2P anchor centres: sum (eq. 20 as written) | mean (Liu et al.'s code).", of=X, rich_help_panel=_X)] = None,
    mc_weight: Annotated[Float, opt("--mc-weight", help="mrda: modality correlation consistency (eq. 22).", of=X, rich_help_panel=_X)] = None,
    ac_weight: Annotated[Float, opt("--ac-weight", help="mrda: region centre loss on stage-1 features (eq. 7).", of=X, rich_help_panel=_X)] = None,
    mask: Annotated[Bool, opt("--mask/--no-mask", help="mrda: also train on the mask-reconstructed images x_M+ (eqs. 1-3).", of=X, rich_help_panel=_X)] = None,
    height: Annotated[Int, opt("--height", help="Input height.", of=A, rich_help_panel=_M)] = None,
    width: Annotated[Int, opt("--width", help="Input width.", of=A, rich_help_panel=_M)] = None,
    epochs: Annotated[Int, train_flag("epochs", of=T, panel=_T)] = None,
    iters_per_epoch: Annotated[Int, train_flag("iters_per_epoch", of=T, panel=_T)] = None,
    max_iters: Annotated[Int, opt("--max-iters", help="Stop after this many steps (0 = off).", of=T, rich_help_panel=_T)] = None,
    stop_after: Annotated[Int, opt("--stop-after", help="Stop after N new epochs; resume later.", of=T, rich_help_panel=_T)] = None,
    optimizer: Annotated[Str, opt("--optimizer", help="adam | adamw | sgd.", of=T, rich_help_panel=_T)] = None,
    lr: Annotated[Float, train_flag("lr", of=T, panel=_T)] = None,
    weight_decay: Annotated[Float, train_flag("weight_decay", of=T, panel=_T)] = None,
    schedule: Annotated[Str, opt("--schedule", help="step | cosine | constant.", of=T, rich_help_panel=_T)] = None,
    milestones: Annotated[Str, opt("--milestones", help="Epochs of x gamma decay, comma-separated (the default, when past --epochs, is scaled to the run).", of=T, rich_help_panel=_T)] = None,
    gamma: Annotated[Float, opt("--gamma", help="Step decay factor.", of=T, rich_help_panel=_T)] = None,
    warmup_epochs: Annotated[Float, opt("--warmup-epochs", help="Linear warm-up epochs (the default, when as long as --epochs, is scaled to the run).", of=T, rich_help_panel=_T)] = None,
    p: Annotated[Int, train_flag("p", of=T, panel=_T)] = None,
    k: Annotated[Int, train_flag("k", of=T, panel=_T)] = None,
    batch_size: Annotated[Int, train_flag("batch_size", panel=_T)] = None,
    images_per_bn: Annotated[Int, train_flag("images_per_bn", of=T, panel=_T)] = None,
    sync_bn: Annotated[Bool, opt("--sync-bn/--no-sync-bn", help="SyncBN under DDP on CUDA.", of=T, rich_help_panel=_T)] = None,
    amp: Annotated[Bool, train_flag("amp", of=T, panel=_T)] = None,
    eval_every: Annotated[Int, opt("--eval-every", help="Evaluate query/gallery every N epochs.", of=T, rich_help_panel=_T)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUTPUT where it stopped.", rich_help_panel=_T)] = False,
    target: Annotated[Optional[Path], typer.Option("--target", help="Unlabelled target images for BN statistics.", rich_help_panel=_T, exists=True)] = None,
    domain_bn: Annotated[bool, typer.Option("--domain-bn", help="Separate source/target BN (needs --target).", rich_help_panel=_T)] = False,
    scale: Annotated[Float, opt("--scale", help="agents: softmax scale of the agent loss.", of=AgentsOptions, rich_help_panel=_L)] = None,
    label_smooth: Annotated[Float, opt("--label-smooth", help="Label smoothing epsilon.", of=L, rich_help_panel=_L)] = None,
    margin: Annotated[Float, opt("--margin", help="Triplet margin.", of=L, rich_help_panel=_L)] = None,
    soft_margin: Annotated[Bool, opt("--soft-margin", help="Soft-margin triplet.", of=L, rich_help_panel=_L)] = None,
    ce_weight: Annotated[Float, opt("--ce-weight", help="Weight of the ID loss.", of=L, rich_help_panel=_L)] = None,
    triplet_weight: Annotated[Float, opt("--triplet-weight", help="Weight of the triplet loss.", of=L, rich_help_panel=_L)] = None,
    center_weight: Annotated[Float, opt("--center-weight", help="Centre loss weight (0 = off; 0.0035).", of=L, rich_help_panel=_L)] = None,
    center_lr: Annotated[Float, opt("--center-lr", help="SGD lr of the centres.", of=L, rich_help_panel=_L)] = None,
    flip: Annotated[Float, opt("--flip", help="Horizontal flip probability.", of=A, rich_help_panel=_A)] = None,
    pad: Annotated[Int, opt("--pad", help="Padding before random crop (0 = off).", of=A, rich_help_panel=_A)] = None,
    resized_crop: Annotated[Bool, opt("--resized-crop", help="RandomResizedCrop instead of pad+crop.", of=A, rich_help_panel=_A)] = None,
    jitter: Annotated[Float, opt("--jitter", help="Colour-jitter strength (0 = off).", of=A, rich_help_panel=_A)] = None,
    erasing: Annotated[Float, train_flag("erasing", of=A, panel=_A)] = None,
    seed: Annotated[Int, train_flag("seed", of=T)] = None,
    deterministic: Annotated[Bool, opt("--deterministic", help="Deterministic kernels.", of=T)] = None,
    workers: Workers = None,
    threads: Threads = None,
    cache_images: Annotated[Bool, train_flag("cache_images", of=T, panel=_T)] = None,
    recipe: Recipe = None,
    config: Config = None,
    device: Device = "auto",
) -> None:
    """Train a re-ID network on the labelled train split of DATA (ID + triplet loss) and write
    a self-describing checkpoint after every epoch (resumable with --resume). Under
    'torchrun --nproc_per_node N' it trains with DDP.

    With --arch rbnet (Yu & Piao 2024) the reverse backbone learns heat-maps of the --pose
    keypoints and a second pass on the masked image adds ID2 + triplet2 losses.

    Example: reid pretrain data/market -o m.pt --arch resnet50 --epochs 80
    """
    flags = dict(locals())  # the parameters only: taken before any other name is bound
    from reidcli.train.pretrain import pretrain_from_settings
    from reidcli.utils.progress import say

    parts = command_settings({"format": fmt, **flags}, skip=("data", "output", "fmt", "config"))
    parts["config_aliases"] = {**parts["config_aliases"], "format": "format"}
    out = pretrain_from_settings(data, output, config=config, defaults=parts["defaults"],
                                 config_aliases=parts["config_aliases"], **parts["settings"])
    if os.environ.get("RANK", "0") == "0":  # one line under torchrun, not one per process
        say(f"wrote {out}")
