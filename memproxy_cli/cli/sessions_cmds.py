"""`memproxy sessions`: upstream sessions, cookie names (never values), requests, verdicts and
deployments in cooldown; live from the daemon, else from the snapshot it last wrote."""

from __future__ import annotations

import time
from typing import Any

import typer

from memproxy_cli.cli.context import output


def sessions(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list for scripts."),
) -> None:
    """Show each upstream: cookies, requests, last status, verdict, deployments in cooldown.

    Cookies are names and expiry, never values; a cooldown names the deployment, the model,
    the caller key's hash and the time left. Asks the running daemon for its live state; when
    it is not running, reads the snapshot it left.

    Example: memproxy sessions --json
    """
    rows = _rows()
    if as_json:
        output.json(rows)
        return
    if not rows:
        output.say("no upstream sessions yet")
        return
    output.out.print(_table(rows))
    cooldowns = [c for row in rows for c in row.get("cooldowns", ())]
    if cooldowns:
        output.out.print(_cooldown_table(cooldowns))


def _rows() -> list[dict[str, Any]]:
    from memproxy_cli.daemon import client
    from memproxy_cli.paths import get_paths

    paths = get_paths()
    try:
        code, live = client.call(paths, "GET", "/sessions", timeout=5)
    except client.DaemonUnavailable:
        code, live = 0, None
    if code == 200 and isinstance(live, list):
        return live
    from memproxy_cli.upstream.session_state import sessions_view

    return sessions_view(paths.state_dir / "sessions.json", paths.cookie_dir)


def cooldown_text(c: dict[str, Any]) -> str:
    """One cooldown for people: `gpt-4o#1 key 3f2a9c0d1e2b (429) ends in 28s`."""
    key = f" key {c['key_hash']}" if c.get("key_hash") else ""
    return f"{c['deployment']}{key} ({c['reason']}) ends {_in(c['until'])}"


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
    for heading in ("cookies", "requests", "status", "verdict", "cooldowns"):
        table.add_column(heading)
    for row in rows:
        table.add_row(
            row["origin"],
            _cookies(row),
            str(row["requests"]),
            str(row["last_status"] or "-"),
            row["last_verdict"] or "-",
            str(len(row.get("cooldowns", ())) or "-"),
        )
    return table


def _cooldown_table(cooldowns: list[dict[str, Any]]) -> Any:
    from memproxy_cli.cli.data_table import DataTable

    table = DataTable(title="deployments in cooldown")
    for heading in ("deployment", "upstream", "caller key", "reason", "ends"):
        table.add_column(heading)
    for c in cooldowns:
        key = c.get("key_hash") or "(every caller)"
        table.add_row(c["deployment"], c["upstream"], key, c["reason"], _in(c["until"]))
    return table


def register(app: typer.Typer) -> None:
    app.command("sessions")(sessions)
