"""What `memproxy top` draws from one `/live` snapshot: plain text lines or a Rich renderable.

Both come from the same sections (a title, column names, rows), so the TTY view and the plain
text a pipe gets say the same thing. Every cell goes through `printable` (names and models come
from requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memproxy_cli.cli.context import printable

RECENT_ROWS = 15
GROUP_ROWS = 8
_NUMERIC = frozenset({"req/s", "reqs", "errors", "p50 ms", "p99 ms", "in", "out", "cost $", "mem"})
_NUMERIC |= {"ms", "ttft", "http", "over ms"}


@dataclass
class Section:
    title: str
    columns: tuple[str, ...]
    rows: Sequence[Sequence[str]]


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _n(value: Any) -> str:
    return "-" if value is None else str(value)


def headline(snap: dict[str, Any]) -> str:
    latency, overhead = snap["latency_ms"], snap["overhead_ms"]
    return (
        f"memproxy top   up {_duration(snap['uptime_s'])}   {snap['rps']:.1f} req/s   "
        f"in flight {snap['inflight']}   latency p50 {_ms(latency['p50'])} ms "
        f"p99 {_ms(latency['p99'])} ms   overhead p50 {_ms(overhead['p50'])} ms "
        f"p99 {_ms(overhead['p99'])} ms\n"
        f"requests {snap['requests']}   errors {snap['errors']}   "
        f"tokens in {snap['input_tokens']} out {snap['output_tokens']}   "
        f"cost ${snap['cost_usd']:.4f}   memories injected {snap['memories_injected']}"
    )


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _group(title: str, groups: list[dict[str, Any]]) -> Section:
    columns = (title, "req/s", "reqs", "errors", "p50 ms", "p99 ms", "in", "out", "cost $", "mem")
    rows = [
        (
            str(g["name"] or "(none)"),
            f"{g['rps']:.1f}",
            str(g["requests"]),
            str(g["errors"]),
            _ms(g["latency_ms"]["p50"]),
            _ms(g["latency_ms"]["p99"]),
            str(g["input_tokens"]),
            str(g["output_tokens"]),
            f"{g['cost_usd']:.4f}",
            str(g["memories_injected"]),
        )
        for g in groups[:GROUP_ROWS]
    ]
    return Section(title + "s", columns, rows)


def _recent(rows: list[dict[str, Any]]) -> Section:
    columns: tuple[str, ...] = ("time", "project", "client", "model", "status", "http", "ms")
    columns += ("ttft", "over ms", "in", "out", "mem")
    out = [
        (
            datetime.fromtimestamp(r["started_at"]).strftime("%H:%M:%S"),
            str(r["project"] or "-"),
            str(r["client"] or "-"),
            str(r["model"] or "-"),
            str(r["status"]),
            _n(r["http_status"]),
            _ms(r["latency_ms"]),
            _ms(r["ttft_ms"]),
            "-" if r["overhead_ms"] is None else f"{r['overhead_ms']:.2f}",
            _n(r["prompt_tokens"]),
            _n(r["completion_tokens"]),
            str(r["memories_injected"]),
        )
        for r in rows[:RECENT_ROWS]
    ]
    return Section("last requests", columns, out)


def sections(snap: dict[str, Any]) -> list[Section]:
    return [
        _group("project", snap["projects"]),
        _group("client", snap["clients"]),
        _recent(snap["recent"]),
    ]


def plain_text(snap: dict[str, Any]) -> str:
    """The whole view as plain text with aligned columns (for pipes and files)."""
    lines = [printable(headline(snap))]
    for section in sections(snap):
        lines.append("")
        lines.append(section.title)
        lines.extend(_aligned(section))
    return "\n".join(lines)


def _aligned(section: Section) -> list[str]:
    cells = [tuple(printable(c).replace("\n", " ") for c in r) for r in section.rows]
    widths = [len(c) for c in section.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(row: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if name in _NUMERIC else c.ljust(w)
            for c, w, name in zip(row, widths, section.columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(section.columns), *(line(r) for r in cells)] if cells else ["  (none yet)"]


def renderable(snap: dict[str, Any]) -> Any:
    """The view for a terminal (Rich), built from the same sections."""
    from rich.console import Group
    from rich.text import Text

    from memproxy_cli.cli.data_table import DataTable

    parts: list[Any] = [Text(printable(headline(snap)), style="bold")]
    for section in sections(snap):
        table = DataTable(title=section.title, title_justify="left", box=None, header_style="bold")
        for name in section.columns:
            table.add_column(name, justify="right" if name in _NUMERIC else "left", no_wrap=True)
        for row in section.rows:
            table.add_row(*row)
        parts.extend([Text(""), table])
    parts.append(Text("q quits", style="dim"))
    return Group(*parts)
