"""reidcli.data."""
