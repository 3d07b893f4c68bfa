"""reidcli.eval."""
