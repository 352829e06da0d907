"""Horizontal bar charts in plain text: one line per (day, group), bars scaled to the largest.

Bars use the eighth blocks (U+2588..U+258F), so a bar's length is exact to 1/8 of a cell; no
colour is needed to read one, and the lines print the same on a terminal, a pipe or a file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from memproxy_cli.cli.context import printable

FULL = "\u2588"
EIGHTHS = ("", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589")
DEFAULT_WIDTH = 40


def bar(value: float, largest: float, width: int) -> str:
    """A bar of VALUE / LARGEST of WIDTH cells (empty for zero or less)."""
    if largest <= 0 or value <= 0:
        return ""
    eighths = round(value / largest * width * 8)
    return FULL * (eighths // 8) + EIGHTHS[eighths % 8]


def bar_cells(text: str) -> float:
    """The length in cells a bar drawn by `bar` shows (what a reader sees)."""
    full = text.count(FULL)
    part = next((i for i, e in enumerate(EIGHTHS) if e and e in text), 0)
    return full + part / 8


def chart(
    rows: Sequence[tuple[str, str, float]],
    fmt: Callable[[float], str],
    width: int = DEFAULT_WIDTH,
) -> list[str]:
    """Lines for (day, group, value) rows in order; each day's label only on its first line."""
    if not rows:
        return []
    largest = max(v for _, _, v in rows)
    groups = [printable(g or "(none)").replace("\n", " ") for _, g, _ in rows]
    group_width = max(len(g) for g in groups)
    day_width = max(len(d) for d, _, _ in rows)
    lines, last_day = [], None
    for (day, _, value), group in zip(rows, groups, strict=True):
        label = day if day != last_day else ""
        last_day = day
        drawn = bar(value, largest, width)
        lines.append(
            f"{label:<{day_width}}  {group:<{group_width}}  {drawn:<{width + 1}} {fmt(value)}"
        )
    return lines
