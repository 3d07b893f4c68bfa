"""`reid plot`: training curves from a JSONL log, t-SNE of features, cluster-size histogram."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from reidcli.cli.common import Json, Output, Seed, reid_command
from reidcli.cli.defaults import opt
from reidcli.plot.figures import TsneOptions


@reid_command("plot")
def command(
    source: Annotated[Path, typer.Argument(help="A training log (m.log.jsonl), a features file (with --tsne) "
                                                "or a labels file.")],
    output: Output,
    tsne: Annotated[bool, typer.Option("--tsne", help="t-SNE of a features file's --split.")] = False,
    color: Annotated[Optional[str], typer.Option("--color", help=(
        "--tsne colours: camera | cluster (needs --labels) | identity (default: cluster with --labels, "
        "else camera)."))] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", dir_okay=False, help=(
        "A labels file of the same split (reid cluster), for --color cluster."))] = None,
    split: Annotated[Optional[str], opt("--split", help="--tsne: the split to draw.", of=TsneOptions)] = None,
    max_points: Annotated[Optional[int], opt("--max-points", min=5, help=(
        "--tsne: draw at most this many images (a seeded sample)."), of=TsneOptions)] = None,
    perplexity: Annotated[Optional[float], opt("--perplexity", help=(
        "--tsne: t-SNE perplexity (lowered for small splits)."), of=TsneOptions)] = None,
    seed: Seed = 0,
    as_json: Json = False,
) -> None:
    """Draw a picture (.png, .pdf or .svg, by the -o suffix): the training curves of a
    JSONL log (loss terms, accuracy, learning rate, evaluations, against optimizer steps),
    a t-SNE of a features file (--tsne, coloured by camera, cluster or identity), or the
    histogram of cluster sizes of a labels file.

    Example: reid plot m.log.jsonl -o curves.png
    """
    from reidcli.plot import plot
    from reidcli.utils.progress import say

    report = plot(source, output, tsne=tsne, color=color, labels=labels, split=split, max_points=max_points,
                  perplexity=perplexity, seed=seed)
    for note in report.notes:
        say(f"reid plot: {note}")
    say(report.summary())
    if as_json:
        print(json.dumps(report.as_dict()))
