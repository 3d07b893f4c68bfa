"""`reid merge f.1.h5 ... -o f.h5`: join 'reid features --shard i/n' outputs (or the folders
of 'reid stylize apply --shard i/n')."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidcli.cli.common import Output, reid_command


@reid_command("merge")
def command(
    shards: Annotated[list[Path], typer.Argument(help="The n shard files or styled folders (any order).", exists=True)],
    output: Output,
) -> None:
    """Join the n files written by 'reid features --shard i/n' into the one features file a
    single run would write, after checking that all shards of one extraction are present;
    given folders, join the n trees of 'reid stylize apply --shard i/n' the same way.

    Example: reid merge f.1.h5 f.2.h5 -o f.h5
    """
    from reidcli.features import merge_shards
    from reidcli.stylize.merge import merge_styled
    from reidcli.utils.errors import ConfigError
    from reidcli.utils.progress import say

    folders = [p.is_dir() for p in shards]
    if any(folders) and not all(folders):
        raise ConfigError("give either features shard files or styled shard folders, not both")
    out = (merge_styled if all(folders) else merge_shards)(shards, output)
    say(f"wrote {out}")
