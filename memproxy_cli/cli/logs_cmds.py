"""`memproxy logs`: the request log, read straight from the spend store (no daemon needed)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from memproxy_cli.cli.context import ExitStatus, output

if TYPE_CHECKING:
    from memproxy_cli.store.queries import SpendQueries

FOLLOW_POLL_S = 0.5


def open_store() -> SpendQueries:
    """The read side of the configured store (errors become a clean exit)."""
    from memproxy_cli.config_file import PeekError, peek, resolve_secret
    from memproxy_cli.paths import get_paths
    from memproxy_cli.store.queries import open_queries

    try:
        database_url = peek("database_url")
    except PeekError:
        from memproxy_cli.config import ConfigError, load_config

        try:  # the full validation says which key and line is wrong
            load_config()
        except ConfigError as exc:
            output.fail(str(exc), ExitStatus.CONFIG)
        raise
    url = resolve_secret(database_url) if isinstance(database_url, str) else None
    return open_queries(url, get_paths())


def since_ts(value: str | None) -> float | None:
    from memproxy_cli.store.queries import parse_since

    try:
        return parse_since(value) if value else None
    except ValueError as exc:
        output.fail(str(exc), ExitStatus.USAGE)


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def render_rows(rows: list[dict[str, Any]]) -> None:
    from memproxy_cli.cli.data_table import DataTable

    table = DataTable(box=None, header_style="bold")
    for name in ("time", "project", "model", "status", "http", "in", "out", "cost $", "ms", "id"):
        numeric = name in {"http", "in", "out", "cost $", "ms"}
        table.add_column(name, justify="right" if numeric else "left", no_wrap=name == "time")
    for r in rows:
        table.add_row(
            datetime.fromtimestamp(r["started_at"]).strftime("%m-%d %H:%M:%S"),
            r["project"] or "-",
            r["model"] or "-",
            r["status"],
            _fmt(r["http_status"]),
            _fmt(r["prompt_tokens"]),
            _fmt(r["completion_tokens"]),
            _fmt(r["cost_usd"], ".6f"),
            _fmt(r["latency_ms"], ".0f"),
            r["request_id"],
        )
    output.out.print(table)


def _json_lines(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        output.json_line(r)


def logs(
    n: int = typer.Option(20, "-n", "--lines", min=1, help="How many recent requests."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new requests."),
    project: str | None = typer.Option(None, "--project", help="Only this project."),
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    status: str | None = typer.Option(None, "--status", help="ok, error, client_disconnect..."),
    since: str | None = typer.Option(None, "--since", help="1h, 30m, 2d or a date (UTC)."),
    as_json: bool = typer.Option(False, "--json", help="JSON (JSON lines with --follow)."),
) -> None:
    """Show the request log from the spend store.

    Example: memproxy logs -n 20 --project my-app --status error
    """
    queries = open_store()
    filters: dict[str, Any] = {
        "project": project,
        "model": model,
        "status": status,
        "since": since_ts(since),
    }
    rows = queries.recent_rows(n, **filters)
    if not follow:
        if as_json:
            output.json(rows)
        else:
            render_rows(rows)
        return
    emit = _json_lines if as_json else render_rows
    emit(rows)
    last_id = max([int(r["id"]) for r in rows] + [queries.last_id()])
    try:
        while True:
            time.sleep(FOLLOW_POLL_S)
            new = queries.rows_after(last_id, **filters)
            if new:
                emit(new)
                last_id = int(new[-1]["id"])
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
