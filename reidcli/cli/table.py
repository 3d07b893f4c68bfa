"""The table shapes commands print on stdout: a titled two-column (metric, value) table, and a
wide one (a row per item, a column per metric: `reid evaluate` over several files)."""

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


def print_wide_table(title: str, header: list[str], rows: Iterable[list[str]], caption: str | None = None) -> None:
    """Print ``rows`` under ``header``: the first column left-aligned, the others right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, show_header=True)
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)
