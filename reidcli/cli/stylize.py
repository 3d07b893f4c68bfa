"""`reid stylize fit|apply` (not implemented yet)."""

import typer

from reidcli.cli.common import not_implemented, reid_command

app = typer.Typer(no_args_is_help=True, help="Camera-style transfer: fit a model, apply it.")


@app.command("fit")
@reid_command("stylize fit")
def fit() -> None:
    """Not implemented yet: exits 1."""
    not_implemented("stylize fit")


@app.command("apply")
@reid_command("stylize apply")
def apply() -> None:
    """Not implemented yet: exits 1."""
    not_implemented("stylize apply")
