"""reidcli.pose."""
