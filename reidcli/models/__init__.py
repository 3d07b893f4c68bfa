"""reidcli.models."""
