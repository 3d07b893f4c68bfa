"""reidcli.io."""
