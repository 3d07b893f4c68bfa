"""reidcli.train."""
