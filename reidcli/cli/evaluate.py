"""`reid evaluate` (not implemented yet)."""

from reidcli.cli.common import not_implemented, reid_command


@reid_command("evaluate")
def command() -> None:
    """Not implemented yet: exits 1."""
    not_implemented("evaluate")
