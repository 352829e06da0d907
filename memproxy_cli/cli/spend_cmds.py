"""`memproxy spend`: cost and token totals from the store's daily aggregates (no daemon needed)."""

from __future__ import annotations

from typing import Any

import typer

from memproxy_cli.cli.context import ExitStatus, output
from memproxy_cli.cli.logs_cmds import open_store, since_ts

GROUPS = ("project", "model", "day")


def render_totals(by: str, rows: list[dict[str, Any]]) -> None:
    from memproxy_cli.cli.data_table import DataTable
    from memproxy_cli.store.rows import DAILY_COUNTERS

    table = DataTable(box=None, header_style="bold", show_footer=len(rows) > 1)
    total = {k: sum(r[k] for r in rows) for k in (*DAILY_COUNTERS, "cost_usd")}
    table.add_column(by, footer="total")
    for name in DAILY_COUNTERS:
        label = name.removesuffix("_tokens").replace("_", " ")
        table.add_column(label, justify="right", footer=str(total[name]))
    table.add_column("cost $", justify="right", footer=f"{total['cost_usd']:.4f}")
    for r in rows:
        table.add_row(
            r["key"] or "(none)", *(str(r[k]) for k in DAILY_COUNTERS), f"{r['cost_usd']:.4f}"
        )
    output.out.print(table)


def spend(
    by: str = typer.Option("project", "--by", help="Group by project, model or day."),
    since: str | None = typer.Option(None, "--since", help="1h, 2d or a date; whole UTC days."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list."),
) -> None:
    """Show cost and token totals.

    Example: memproxy spend --by model --since 7d
    """
    if by not in GROUPS:
        output.fail(f"--by must be one of {', '.join(GROUPS)}, not {by!r}", ExitStatus.USAGE)
    rows = open_store().spend_totals(by=by, since=since_ts(since))  # type: ignore[arg-type]
    if as_json:
        output.json([{by: r.pop("key"), **r} for r in rows])
    elif not rows:
        output.say("no spend recorded yet")
    else:
        render_totals(by, rows)


def register(app: typer.Typer) -> None:
    app.command("spend")(spend)
