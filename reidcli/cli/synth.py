"""`reid synth` (placeholder until the generator lands)."""

from reidcli.cli.common import not_implemented, reid_command


@reid_command("synth")
def command() -> None:
    """Not implemented yet: exits 1."""
    not_implemented("synth")
