"""`reid info FILE`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import DataFormat, Json, reid_command


@reid_command("info")
def command(
    file: Annotated[Path, typer.Argument(help="A features, labels or pose .h5 file, a .pt checkpoint, "
                                              "or a dataset folder / .csv list.")],
    as_json: Json = False,
    data_format: DataFormat = None,
) -> None:
    """Show what a reidcli file holds (format, splits, shapes, ids, attributes, provenance)
    and check that it is valid; exit 1 with the reason when it is not. Given a dataset
    folder, show its layout and per-split ids, images and cameras.

    Example: reid info f.h5
    """
    from reidcli.io.describe import describe, render

    info = describe(file, data_format)
    if as_json:
        print(json.dumps(info, default=str))
    else:
        render(info)
