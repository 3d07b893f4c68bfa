"""`reid finetune`: one round of unsupervised domain adaptation on pseudo-labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import Ckpt, DataFormat, Device, Output, Seed, Workers, reid_command

Opt = typer.Option


@reid_command("finetune")
def command(
    target: Annotated[Path, typer.Argument(help="Target dataset (its identity labels are never read).", exists=True)],
    ckpt: Ckpt,
    labels: Annotated[Path, Opt("--labels", help="Pseudo-labels of the target train images (reid cluster).", exists=True, dir_okay=False)],
    output: Output,
    method: Annotated[str, Opt("--method", "-m", help="pseudo | mmt | kd | joint.")] = "mmt",
    ckpt2: Annotated[Optional[Path], Opt("--ckpt2", help="MMT: second source network (default: a copy of --ckpt's).", exists=True, dir_okay=False)] = None,
    source: Annotated[Optional[Path], Opt("--source", help="joint: labelled source dataset.", exists=True)] = None,
    data_format: DataFormat = None,
    source_format: Annotated[Optional[str], Opt("--source-format", help="Layout of --source; auto-detected when omitted.")] = None,
    epochs: Annotated[int, Opt("--epochs", min=1, help="Epochs in this round.")] = 1,
    iters: Annotated[int, Opt("--iters", min=0, help="Steps per epoch (MMT: 400; 0 = one pass).")] = 400,
    lr: Annotated[float, Opt("--lr", min=0.0, help="Adam learning rate (MMT: 3.5e-4).")] = 3.5e-4,
    weight_decay: Annotated[float, Opt("--weight-decay", min=0.0)] = 5e-4,
    p: Annotated[int, Opt("--ids-per-batch", "-P", min=2, help="Identities per batch (P of P x K).")] = 16,
    k: Annotated[int, Opt("--images-per-id", "-K", min=1, help="Images per identity (K of P x K).")] = 4,
    images_per_bn: Annotated[int, Opt("--images-per-bn", min=0, help="BN statistics over groups of N images (0 = batch).")] = 16,
    erasing: Annotated[float, Opt("--erasing", min=0.0, max=1.0, help="Random-erasing probability.")] = 0.5,
    alpha: Annotated[float, Opt("--alpha", min=0.0, max=1.0, help="mmt: EMA momentum of the mean nets.")] = 0.999,
    soft_ce_weight: Annotated[float, Opt("--soft-ce-weight", min=0.0, max=1.0, help="mmt: weight of the soft CE.")] = 0.5,
    soft_tri_weight: Annotated[float, Opt("--soft-tri-weight", min=0.0, max=1.0, help="mmt: weight of the soft triplet.")] = 0.8,
    kd_every: Annotated[int, Opt("--kd-every", min=1, help="kd: blend W toward W_int every N epochs (counted across rounds).")] = 5,
    mu: Annotated[float, Opt("--mu", min=0.0, max=1.0, help="kd: W = (1 - mu) W + mu W_int.")] = 0.5,
    theta: Annotated[float, Opt("--theta", min=0.0, help="joint: weight of the source-vs-target triplet.")] = 0.3,
    margin: Annotated[Optional[float], Opt("--margin", min=0.0, help="Triplet margin (pseudo/kd 0.3, joint 0.5).")] = None,
    label_smooth: Annotated[float, Opt("--label-smooth", min=0.0, max=1.0, help="CE label smoothing.")] = 0.1,
    center_weight: Annotated[Optional[float], Opt("--center-weight", min=0.0, help="Centre-loss weight (kd 0.0035, else 0).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    workers: Workers = 2,
    no_amp: Annotated[bool, Opt("--no-amp", help="Disable mixed precision on CUDA.")] = False,
) -> None:
    """Adapt a model to TARGET for one round, with the pseudo-labels of 'reid cluster'.

    Methods: pseudo (CE + triplet on the pseudo-labels), mmt (Mutual Mean-Teaching, two
    nets and their mean nets; the checkpoint carries all four and the next round continues
    them; 'reid features' uses the first mean net), kd (intermediate copy blended into the
    weights every --kd-every epochs), joint (labelled --source images and the target
    together). Outliers (-1) are left out. -o may equal --ckpt: it is replaced only when
    the round has finished.

    Example: reid finetune --ckpt m.pt --labels labels.h5 duke/ -o m2.pt --method mmt
    """
    from reidcli.train.finetune import finetune
    from reidcli.utils.progress import say

    opts = {"alpha": alpha, "soft_ce_weight": soft_ce_weight, "soft_tri_weight": soft_tri_weight,
            "kd_every": kd_every, "mu": mu, "theta": theta, "margin": margin,
            "label_smooth": label_smooth, "center_weight": center_weight}
    out = finetune(ckpt, labels, target, output, method=method, ckpt2=ckpt2, source=source,
                   target_format=data_format, source_format=source_format, epochs=epochs,
                   iters=iters, lr=lr, weight_decay=weight_decay, p=p, k=k,
                   images_per_bn=images_per_bn, erasing=erasing, seed=seed, device=device,
                   workers=workers, amp=not no_amp, **opts)
    say(f"wrote {out}")
