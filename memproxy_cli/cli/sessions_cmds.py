"""`memproxy sessions`: upstream sessions, cookie names (never values), requests and verdicts."""

from __future__ import annotations

import time
from typing import Any

import typer

from memproxy_cli.cli.context import output


def sessions(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list for scripts."),
) -> None:
    """Show each upstream: cookies held (names and expiry), requests, last status and verdict.

    Example: memproxy sessions --json
    """
    from memproxy_cli.paths import get_paths
    from memproxy_cli.upstream.session_state import sessions_view

    paths = get_paths()
    rows = sessions_view(paths.state_dir / "sessions.json", paths.cookie_dir)
    if as_json:
        output.json(rows)
        return
    if not rows:
        output.say("no upstream sessions yet")
        return
    output.out.print(_table(rows))


def _in(when: str | None) -> str:
    """An ISO time as a short distance from now: `in 29m`, `in 3h`, `past`."""
    from memproxy_cli.upstream.session_state import from_iso

    ts = from_iso(when)
    if ts is None:
        return "-"
    left = int(ts - time.time())
    if left <= 0:
        return "past"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"in {left // size}{unit}"
    return f"in {left}s"


def _cookies(row: dict[str, Any]) -> str:
    parts = [
        f"{c['name']} ({_in(c['expires'])})" if c["expires"] else f"{c['name']} (session)"
        for c in row["cookies"]
    ]
    return "\n".join(parts) or "-"


def _table(rows: list[dict[str, Any]]) -> Any:
    from memproxy_cli.cli.data_table import DataTable

    table = DataTable()
    table.add_column("upstream", no_wrap=True)
    for heading in ("cookies", "requests", "status", "verdict", "backoff"):
        table.add_column(heading)
    for row in rows:
        table.add_row(
            row["origin"],
            _cookies(row),
            str(row["requests"]),
            str(row["last_status"] or "-"),
            row["last_verdict"] or "-",
            _in(row["backed_off_until"]),
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("sessions")(sessions)
