"""`reid features --ckpt m.pt DATA -o f.h5`: embeddings for every split of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import BatchSize, CamRegex, Ckpt, DataFormat, Device, Output, Threads, Workers, reid_command


@reid_command("features")
def command(
    data: Annotated[Path, typer.Argument(help="Dataset folder (layout auto-detected).", exists=True)],
    ckpt: Ckpt,
    output: Output,
    split: Annotated[Optional[list[str]], typer.Option("--split", help="Only this split (repeatable).")] = None,
    fmt: DataFormat = None,
    cam_regex: CamRegex = None,
    flip: Annotated[bool, typer.Option("--flip", help="Average with the mirrored image.")] = False,
    half: Annotated[bool, typer.Option("--half", help="float16 output (and fp16 inference on CUDA).")] = False,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise the embeddings.")] = True,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Extract part i of n (i/n, 1-based); join with 'reid merge'.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave unreadable images out instead of failing.")] = False,
    bn_domain: Annotated[Optional[str], typer.Option("--bn-domain", help="With domain-specific BN: source | target.")] = None,
    save_heatmaps: Annotated[bool, typer.Option("--save-heatmaps", help="RBNet: also store the predicted keypoint heat-maps.")] = False,
    soft_labels: Annotated[bool, typer.Option("--soft-labels", help=(
        "MAR checkpoints (reference agents): also store each image's soft multilabel over the agents.")),
    ] = False,
    soft_label_scale: Annotated[float, typer.Option("--soft-label-scale", min=1e-6, help=(
        "--soft-labels: the softmax scale s (MAR: 30).")),
    ] = 30.0,
    net: Annotated[Optional[str], typer.Option("--net", help="Network of the checkpoint: model (default; MMT's mean net 1, alias mean1) or mean2, net1, net2, mean (MMT: both mean nets averaged, as MMT clusters), intermediate (KD).")] = None,
    batch_size: BatchSize = 128,
    workers: Workers = None,
    threads: Threads = None,
    device: Device = "auto",
) -> None:
    """Embed every image of DATA (every split found, or --split) with the network stored in
    --ckpt and write a features file; --shard i/n writes one part for 'reid merge'.

    Example: reid features --ckpt m.pt data/market -o f.h5 --flip
    """
    from reidcli.features import extract, parse_shard
    from reidcli.utils.progress import say

    out = extract(ckpt, data, output, splits=split, format=fmt, cam_regex=cam_regex, flip=flip, half=half, normalize=normalize,
                  batch_size=batch_size, workers=workers, device=device, shard=parse_shard(shard),
                  skip_bad=skip_bad, bn_domain=bn_domain, save_heatmaps=save_heatmaps, net=net, threads=threads,
                  soft_labels=soft_labels, soft_label_scale=soft_label_scale)
    say(f"wrote {out}")
