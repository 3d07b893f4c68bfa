"""reidcli.stylize."""
