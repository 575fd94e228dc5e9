"""Rows as blocks of lines, for where a table of many columns does not fit the terminal.

A table of many columns on an 80-column terminal (or in a cron mail) folds each cell into
a few letters a line, or cuts it short ("reas…"): what an operator reads at 3 a.m. there
is each row as a block, a field a line, its words whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

MIN_VALUE_WIDTH = 8
"""The fewest columns a field's value is given, however narrow the terminal."""
Fields = Sequence[tuple[str, str]]
"""A row's (column, cell) pairs, the cells people's text (never rich markup)."""


def field_blocks(title: str, rows: Sequence[tuple[Text, Fields]]) -> Group:
    """`title`, then each row: its heading, and a line per field."""
    shown: list[Text | Table] = [Text(title, style="bold")]
    for heading, fields in rows:
        block = Table.grid(padding=(0, 2))
        # On a very narrow terminal (20 columns) a name column that may not wrap took the
        # whole width, and every value was cut to nothing: the names fold there instead.
        block.add_column(overflow="fold", style="dim")
        block.add_column(overflow="fold", min_width=MIN_VALUE_WIDTH)
        for name, cell in fields:
            block.add_row(f"  {name}", Text(cell))
        shown += [Text(""), heading, block]
    return Group(*shown)
