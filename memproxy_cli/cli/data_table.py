"""A Rich table for data: every text cell is printed as it is, with no markup and no controls.

Cells hold what requests and upstreams sent (model names, user agents, memory text), so a cell
is never read as Rich markup and loses every character a terminal would act on. Import it where
a command draws its table, never at module level (it loads Rich).
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from memproxy_cli.cli.context import printable


def cell(value: str, style: str = "") -> Text:
    """A cell showing VALUE literally, in STYLE."""
    return Text(printable(value), style=style)


class DataTable(Table):
    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(
            *(cell(r) if isinstance(r, str) else r for r in renderables),
            **kwargs,
        )
