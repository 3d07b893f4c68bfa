"""`reid stylize fit|apply`: camera-style transfer (`reidcli.stylize`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import BatchSize, CamRegex, DataFormat, Device, Output, Recipe, Seed, reid_command
from reidcli.cli.defaults import opt
from reidcli.stylize.options import ColorFit, StarGANInput, StarGANOptions, StarGANTrainConfig

app = typer.Typer(no_args_is_help=True, help="Camera-style transfer: fit a model, apply it.")
Data = Annotated[Path, typer.Argument(help="Dataset folder (layout auto-detected).", exists=True)]


Int = Optional[int]
Float = Optional[float]


@app.command("fit")
@reid_command("stylize fit", side_files=(".log.jsonl", ".samples"))
def fit(
    data: Data,
    output: Output,
    method: Annotated[Optional[str], typer.Option("--method", help="color (training-free colour statistics in Lab: "
                                                  "mean, covariance, tone curve) | stargan (Choi et al. 2018, "
                                                  "trained); color when omitted, or the --recipe's.")] = None,
    fmt: DataFormat = None,
    cam_regex: CamRegex = None,
    split: Annotated[str, typer.Option("--split", help="The split whose cameras are learnt.")] = "train",
    max_images: Annotated[Int, opt("--max-images", help="color: images read per camera.", of=ColorFit)] = None,
    max_pixels: Annotated[Int, opt("--max-pixels", help="color: pixels kept per camera.", of=ColorFit)] = None,
    seed: Seed = 0,
    image_size: Annotated[Optional[str], opt("--image-size", help="stargan: HEIGHTxWIDTH, multiples of 4.",
                                             shows="x".join(map(str, StarGANInput.image_size)))] = None,
    epochs: Annotated[Int, opt("--epochs", help="stargan: epochs.", of=StarGANTrainConfig)] = None,
    iters_per_epoch: Annotated[Int, opt("--iters-per-epoch", "--iters", help=(
        "stargan: steps per epoch (critic and generator steps: 1,200 = 1,000 critic iterations at --n-critic 5)."),
        of=StarGANTrainConfig)] = None,
    max_iters: Annotated[Int, typer.Option("--max-iters", help="stargan: stop after this many steps in total.")] = None,
    stop_after: Annotated[Int, typer.Option("--stop-after", help="stargan: stop after this many new epochs.")] = None,
    p: Annotated[Int, opt("--batch-size", help="stargan: images per batch.", of=StarGANTrainConfig, field="p")] = None,
    lr: Annotated[Float, opt("--lr", help="stargan: Adam learning rate.", of=StarGANTrainConfig)] = None,
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="stargan: mixed precision on CUDA.")] = None,
    workers: Annotated[Int, typer.Option("--workers", help="stargan: DataLoader worker processes (default: auto, "
                                         "from the cores and the device).")] = None,
    log_every: Annotated[Int, typer.Option("--log-every", help="stargan: steps per JSONL log line.")] = None,
    n_critic: Annotated[Int, opt("--n-critic", help="stargan: discriminator steps per generator step.", of=StarGANOptions)] = None,
    lambda_cls: Annotated[Float, opt("--lambda-cls", help="stargan: camera-classification weight.", of=StarGANOptions)] = None,
    lambda_rec: Annotated[Float, opt("--lambda-rec", help="stargan: reconstruction weight.", of=StarGANOptions)] = None,
    lambda_gp: Annotated[Float, opt("--lambda-gp", help="stargan: gradient-penalty weight.", of=StarGANOptions)] = None,
    g_conv_dim: Annotated[Int, opt("--g-conv-dim", help="stargan: generator width.", of=StarGANOptions)] = None,
    d_conv_dim: Annotated[Int, opt("--d-conv-dim", help="stargan: discriminator width.", of=StarGANOptions)] = None,
    g_repeat: Annotated[Int, opt("--g-repeat", help="stargan: residual blocks.", of=StarGANOptions)] = None,
    sample_every: Annotated[Int, opt("--sample-every", help="stargan: steps between sample sheets.", of=StarGANOptions)] = None,
    lr_decay: Annotated[Float, opt("--lr-decay", help=(
        "stargan: the last fraction of the critic iterations over which both learning rates fall linearly to 0 "
        "(0 = constant)."), of=StarGANOptions)] = None,
    g_batch: Annotated[Optional[str], opt("--g-batch", help=(
        "stargan: the generator step's images and target cameras: critic (the critic step's before it, as "
        "StarGAN's code) | new."), of=StarGANOptions)] = None,
    target_cameras: Annotated[Optional[str], opt("--target-cameras", help=(
        "stargan: target cameras: permute (of the batch's own, as StarGAN's code) | uniform."), of=StarGANOptions)] = None,
    recipe: Recipe = None,
    resume: Annotated[bool, typer.Option("--resume", help="stargan: continue from -o where it stopped.")] = False,
    device: Device = "auto",
) -> None:
    """Learn the style of every camera of DATA's training split and write a style model
    (stargan also writes OUT.log.jsonl and sample sheets in OUT.samples/).

    Example: reid stylize fit data/market -o style.pt --method color
    """
    from reidcli.stylize import fit_style
    from reidcli.stylize.fit import parse_size
    from reidcli.utils.progress import say

    given = {k: v for k, v in locals().items() if v is not None}
    train = {k: given[k] for k in ("epochs", "iters_per_epoch", "max_iters", "stop_after", "p", "lr", "amp",
                                   "workers", "log_every") if k in given}
    options = {k: given[k] for k in ("n_critic", "lambda_cls", "lambda_rec", "lambda_gp", "g_conv_dim",
                                     "d_conv_dim", "g_repeat", "sample_every", "lr_decay", "g_batch",
                                     "target_cameras") if k in given}
    out = fit_style(data, output, method=method, format=fmt, split=split, max_images=max_images,
                    max_pixels=max_pixels, seed=seed, image_size=parse_size(image_size) if image_size else None, options=options,
                    train=train, resume=resume, device=device, cam_regex=cam_regex, recipe=recipe)
    say(f"wrote {out}")


@app.command("apply")
@reid_command("stylize apply", outputs=())  # a dataset folder: checked by the library
def apply(
    data: Data,
    model: Annotated[Path, typer.Option("--model", help="A style model from 'reid stylize fit'.",
                                        exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output dataset folder (written atomically).")],
    cams: Annotated[str, typer.Option("--cams", help="Style cameras: all, or 1-based numbers as in the "
                                      "file names (1,3).")] = "all",
    split: Annotated[Optional[list[str]], typer.Option("--split", help="Split to style (repeatable; "
                                                       "train when omitted).")] = None,
    fmt: DataFormat = None,
    cam_regex: CamRegex = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty output folder.")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Style part i of n of the images (i/n, 1-based) into its own folder; join with 'reid merge'.")] = None,
    batch_size: BatchSize = 32,
    device: Device = "auto",
) -> None:
    """Write every image of DATA in each requested camera's style as a dataset in DATA's
    layout (same ids, the style camera in the names) plus manifest.csv; --shard i/n writes
    one part, and 'reid merge' joins the n folders into the tree one run writes. Layouts:
    market1501, dukemtmc, cuhk03, msmt17 (list files rewritten), sysu (train only) and csv
    (STYLED/<name>.csv lists the styled images); regdb and folder layouts are refused.

    Example: reid stylize apply --model style.pt data/market -o styled/ --cams all
    """
    from reidcli.features import parse_shard
    from reidcli.stylize import apply_style
    from reidcli.utils.progress import say

    res = apply_style(model, data, output, cams=cams, split=tuple(split or ("train",)), format=fmt, force=force,
                      device=device, shard=parse_shard(shard), batch_size=batch_size, cam_regex=cam_regex)
    say(f"wrote {res['images']} styled images to {res['out']} (manifest {res['manifest']})")
