"""`reid merge f.1.h5 ... -o f.h5`: join 'reid features --shard i/n' outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import Output, reid_command


@reid_command("merge")
def command(
    shards: Annotated[list[Path], typer.Argument(help="The n shard files (any order).", exists=True, dir_okay=False)],
    output: Output,
) -> None:
    """Join the n files written by 'reid features --shard i/n' into the one features file a
    single run would write, after checking that all shards of one extraction are present.

    Example: reid merge f.1.h5 f.2.h5 -o f.h5
    """
    from reidcli.features import merge_shards
    from reidcli.utils.progress import say

    out = merge_shards(shards, output)
    say(f"wrote {out}")
