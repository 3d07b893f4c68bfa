"""reidcli.cluster."""
