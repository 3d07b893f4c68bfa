"""reidcli.cli."""
