"""`reid stylize fit|apply`: camera-style transfer (`reidcli.stylize`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import DataFormat, Output, Seed, reid_command

app = typer.Typer(no_args_is_help=True, help="Camera-style transfer: fit a model, apply it.")
Data = Annotated[Path, typer.Argument(help="Dataset folder (layout auto-detected).", exists=True)]


@app.command("fit")
@reid_command("stylize fit")
def fit(
    data: Data,
    output: Output,
    method: Annotated[str, typer.Option("--method", help="color (training-free colour statistics in Lab: "
                                        "mean, covariance, tone curve).")] = "color",
    fmt: DataFormat = None,
    split: Annotated[str, typer.Option("--split", help="The split whose cameras are learnt.")] = "train",
    max_images: Annotated[int, typer.Option("--max-images", help="color: images read per camera.")] = 400,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="color: pixels kept per camera.")] = 65536,
    seed: Seed = 0,
) -> None:
    """Learn the style of every camera of DATA's training split and write a style model.

    Example: reid stylize fit data/market -o style.pt --method color
    """
    from reidcli.stylize import fit_style
    from reidcli.utils.progress import say

    out = fit_style(data, output, method=method, format=fmt, split=split, max_images=max_images,
                    max_pixels=max_pixels, seed=seed)
    say(f"wrote {out}")


@app.command("apply")
@reid_command("stylize apply")
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
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty output folder.")] = False,
) -> None:
    """Write every image of DATA in each requested camera's style as a dataset in DATA's
    layout (same ids, the style camera in the names) plus manifest.csv.

    Example: reid stylize apply --model style.pt data/market -o styled/ --cams all
    """
    from reidcli.stylize import apply_style
    from reidcli.utils.progress import say

    res = apply_style(model, data, output, cams=cams, split=tuple(split or ("train",)), format=fmt, force=force)
    say(f"wrote {res['images']} styled images to {res['out']} (manifest {res['manifest']})")
