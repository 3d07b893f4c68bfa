"""The one table shape commands print on stdout: a titled two-column (metric, value) table."""

from __future__ import annotations

from collections.abc import Iterable


def print_metric_table(title: str, rows: Iterable[tuple[str, str]], caption: str | None = None, *,
                       value_header: str = "value") -> None:
    """Print ``rows`` of (metric, formatted value) as a rich table, values right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, show_header=True)
    table.add_column("metric")
    table.add_column(value_header, justify="right")
    for key, value in rows:
        table.add_row(key, value)
    Console(soft_wrap=True).print(table)
