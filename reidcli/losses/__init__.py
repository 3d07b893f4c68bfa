"""reidcli.losses."""
