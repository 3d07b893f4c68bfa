"""`reid stylize fit|apply`: camera-style transfer (`reidcli.stylize`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import BatchSize, CamRegex, DataFormat, Device, Output, Recipe, Seed, reid_command
from reidcli.stylize.fit import COLOR_DEFAULTS
from reidcli.stylize.options import STARGAN_TRAIN, StarGANOptions

app = typer.Typer(no_args_is_help=True, help="Camera-style transfer: fit a model, apply it.")
Data = Annotated[Path, typer.Argument(help="Dataset folder (layout auto-detected).", exists=True)]


Int = Optional[int]
Float = Optional[float]


_DEFAULTS = {**STARGAN_TRAIN, **StarGANOptions().to_dict()}


def _o(flag: str, text: str, field: Optional[str] = None, *aliases: str):
    """An option whose help ends with the StarGAN default of ``field`` (from the dataclasses)."""
    return typer.Option(flag, *aliases, help=text + (f" \\[{_DEFAULTS[field]}]." if field else ""))


@app.command("fit")
@reid_command("stylize fit", side_files=(".log.jsonl", ".samples"))
def fit(
    data: Data,
    output: Output,
    method: Annotated[Optional[str], _o("--method", "color (training-free colour statistics in Lab: mean, covariance, "
                                                    "tone curve) | stargan (Choi et al. 2018, trained); default "
                                                    "color, or the --recipe's.")] = None,
    fmt: DataFormat = None,
    cam_regex: CamRegex = None,
    split: Annotated[str, _o("--split", "The split whose cameras are learnt.")] = "train",
    max_images: Annotated[Int, _o("--max-images", f"color: images read per camera [{COLOR_DEFAULTS['max_images']}].")] = None,
    max_pixels: Annotated[Int, _o("--max-pixels", f"color: pixels kept per camera [{COLOR_DEFAULTS['max_pixels']}].")] = None,
    seed: Seed = 0,
    image_size: Annotated[Optional[str], _o("--image-size", "stargan: HEIGHTxWIDTH, multiples of 4 [256x128].")] = None,
    epochs: Annotated[Int, _o("--epochs", "stargan: epochs", "epochs")] = None,
    iters_per_epoch: Annotated[Int, _o("--iters-per-epoch", "stargan: steps per epoch (critic and generator steps: 1,200 = 1,000 critic iterations at --n-critic 5)", "iters_per_epoch", "--iters")] = None,
    max_iters: Annotated[Int, _o("--max-iters", "stargan: stop after this many steps in total.")] = None,
    stop_after: Annotated[Int, _o("--stop-after", "stargan: stop after this many new epochs.")] = None,
    p: Annotated[Int, _o("--batch-size", "stargan: images per batch", "p")] = None,
    lr: Annotated[Float, _o("--lr", "stargan: Adam learning rate", "lr")] = None,
    amp: Annotated[Optional[bool], _o("--amp/--no-amp", "stargan: mixed precision on CUDA.")] = None,
    workers: Annotated[Int, _o("--workers", "stargan: DataLoader worker processes (default: auto, from the cores "
                                          "and the device).")] = None,
    log_every: Annotated[Int, _o("--log-every", "stargan: steps per JSONL log line.")] = None,
    n_critic: Annotated[Int, _o("--n-critic", "stargan: discriminator steps per generator step", "n_critic")] = None,
    lambda_cls: Annotated[Float, _o("--lambda-cls", "stargan: camera-classification weight", "lambda_cls")] = None,
    lambda_rec: Annotated[Float, _o("--lambda-rec", "stargan: reconstruction weight", "lambda_rec")] = None,
    lambda_gp: Annotated[Float, _o("--lambda-gp", "stargan: gradient-penalty weight", "lambda_gp")] = None,
    g_conv_dim: Annotated[Int, _o("--g-conv-dim", "stargan: generator width", "g_conv_dim")] = None,
    d_conv_dim: Annotated[Int, _o("--d-conv-dim", "stargan: discriminator width", "d_conv_dim")] = None,
    g_repeat: Annotated[Int, _o("--g-repeat", "stargan: residual blocks", "g_repeat")] = None,
    sample_every: Annotated[Int, _o("--sample-every", "stargan: steps between sample sheets", "sample_every")] = None,
    lr_decay: Annotated[Float, _o("--lr-decay", "stargan: the last fraction of the critic iterations over which both "
                                                "learning rates fall linearly to 0 (0 = constant)", "lr_decay")] = None,
    g_batch: Annotated[Optional[str], _o("--g-batch", "stargan: the generator step's images and target cameras: critic "
                                                      "(the critic step's before it, as StarGAN's code) | new",
                                         "g_batch")] = None,
    target_cameras: Annotated[Optional[str], _o("--target-cameras", "stargan: target cameras: permute (of the batch's "
                                                                    "own, as StarGAN's code) | uniform",
                                                "target_cameras")] = None,
    recipe: Recipe = None,
    resume: Annotated[bool, _o("--resume", "stargan: continue from -o where it stopped.")] = False,
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
                                                       "default train).")] = None,
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
