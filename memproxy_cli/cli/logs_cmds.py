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
        from memproxy_cli.config import load_config

        load_config()  # the full validation says which key and line is wrong
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


ID_TAIL = 6  # request ids are random: their last characters tell rows apart (--json has all)


def render_rows(rows: list[dict[str, Any]]) -> None:
    """The log as a table that fits 80 columns: nothing is cut short with an ellipsis; a long
    model or project name wraps instead."""
    from memproxy_cli.cli.data_table import DataTable

    table = DataTable(box=None, header_style="bold", pad_edge=False, collapse_padding=True)
    table.add_column("time", no_wrap=True)
    table.add_column("project", overflow="fold")
    table.add_column("model", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("cost $", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("id", no_wrap=True)
    today = datetime.now().date()
    same_day = all(datetime.fromtimestamp(r["started_at"]).date() == today for r in rows)
    stamp = "%H:%M:%S" if same_day else "%m-%d %H:%M"
    for r in rows:
        status = (
            r["status"] if r["http_status"] in (200, None) else f"{r['status']} {r['http_status']}"
        )
        table.add_row(
            datetime.fromtimestamp(r["started_at"]).strftime(stamp),
            r["project"] or "-",
            r["model"] or "-",
            status,
            f"{_fmt(r['prompt_tokens'])}/{_fmt(r['completion_tokens'])}",
            _fmt(r["cost_usd"], ".4f"),
            _fmt(r["latency_ms"], ".0f"),
            r["request_id"][-ID_TAIL:],
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
    if not follow:
        rows = queries.recent_rows(n, **filters)
        if as_json:
            output.json(rows)
        else:
            render_rows(rows)
        return
    from memproxy_cli.cli.log_follow import Follow

    emit = _json_lines if as_json else render_rows
    tail = Follow(queries, filters)
    emit(tail.first(n))
    try:
        while True:
            time.sleep(FOLLOW_POLL_S)
            new = tail.poll()
            if new:
                emit(new)
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
