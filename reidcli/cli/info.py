"""`reid info FILE`: describe a file or dataset (library), render it here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from reidcli.cli.common import CamRegex, DataFormat, Json, reid_command


@reid_command("info")
def command(
    file: Annotated[Path, typer.Argument(help="A features, labels or pose .h5 file, a .pt checkpoint, "
                                              "or a dataset folder / .csv list.")],
    as_json: Json = False,
    data_format: DataFormat = None,
    cam_regex: CamRegex = None,
) -> None:
    """Show what a reidcli file holds (format, splits, shapes, ids, attributes, provenance)
    and check that it is valid; exit 1 with the reason when it is not. Given a dataset
    folder, show its layout and per-split ids, images and cameras.

    Example: reid info f.h5
    """
    from reidcli.data.describe import describe

    info = describe(file, data_format, cam_regex=cam_regex)
    if as_json:
        print(json.dumps(info, default=str))
    else:
        render(info)


def render(info: dict[str, Any]) -> None:
    """Print the human summary of a `describe` dict on stdout with rich."""
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    if info["format"] == "dataset":
        return _render_dataset(con, info)
    con.print(f"[bold]{info['file']}[/]: reidcli {info['format']} file, "
              f"version {info.get('version')}, valid")
    if info["format"] == "features":
        t = Table("split", "images", "dim", "dtype", "ids", "unlabelled", "cameras")
        for name, s in info["splits"].items():
            t.add_row(name, str(s["n"]), str(s["dim"]), s["dtype"], str(s["ids"]),
                      str(s["unlabelled"]), str(s["cameras"]))
        con.print(t)
    elif info["format"] == "labels":
        con.print(f"{info['n']} samples, {info['n_clusters']} clusters, {info['n_outliers']} outliers")
        t = Table("cluster size", "clusters")
        for k, v in info["cluster_sizes"].items():
            t.add_row(k, str(v))
        con.print(t)
    elif info["format"] == "pose":
        con.print(f"{info['n']} images, {info['images_without_person']} without a person, "
                  f"mean keypoint score {info['mean_score']:.3f}")
    elif info["format"] == "checkpoint":
        for k, v in info.items():
            if k not in ("file", "format", "provenance"):
                con.print(f"  {k}: {v}")
    for k, v in info.get("attrs", {}).items():
        con.print(f"  {k}: {v}")
    for i, rec in enumerate(info.get("provenance", [])):
        con.print(f"  @PG {i}: {' '.join(rec.get('argv', []))}  ({rec.get('version')}, {rec.get('time')})")


def _render_dataset(con, info: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    con.print(escape(info["summary"]), soft_wrap=True)
    t = Table("split", "images", "ids", "unlabelled", "cameras", "modalities")
    for name, s in info["splits"].items():
        t.add_row(name, str(s["images"]), str(s["ids"]), str(s["unlabelled"]), str(s["cameras"]),
                  ",".join(str(m) for m in s["modalities"]))
    con.print(t)
    for note in info["notes"]:
        con.print(f"  note: {escape(note)}", soft_wrap=True)
