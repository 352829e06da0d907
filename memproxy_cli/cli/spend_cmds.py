"""`memproxy spend`: cost and token totals from the store's daily aggregates (no daemon needed)."""

from __future__ import annotations

import sys
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


def render_chart(by: str, rows: list[dict[str, Any]], tokens: bool) -> None:
    """Cost (or tokens) per UTC day as bars, one line per project or model of each day."""
    from memproxy_cli.cli.bar_chart import chart

    field = "tokens" if tokens else "cost_usd"
    if by == "day":
        per_day: dict[str, float] = {}
        for r in rows:
            per_day[r["day"]] = per_day.get(r["day"], 0) + r[field]
        points = [(day, "", value) for day, value in per_day.items()]
    else:
        points = [(r["day"], r["key"], r[field]) for r in rows]
    fmt = (lambda v: f"{int(v)} tokens") if tokens else (lambda v: f"${v:.4f}")
    lines = chart(points, fmt)  # cells are printable already; never read as markup
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def spend(
    by: str = typer.Option("project", "--by", help="Group by project, model or day."),
    since: str | None = typer.Option(None, "--since", help="1h, 2d or a date; whole UTC days."),
    chart: bool = typer.Option(
        False, "--chart", help="Cost per day as a bar chart, a bar per project or model."
    ),
    tokens: bool = typer.Option(False, "--tokens", help="With --chart: tokens instead of cost."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list."),
) -> None:
    """Show cost and token totals.

    Example: memproxy spend --by model --since 7d
    Example: memproxy spend --chart --by model --since 14d
    """
    if by not in GROUPS:
        output.fail(f"--by must be one of {', '.join(GROUPS)}, not {by!r}", ExitStatus.USAGE)
    if chart:
        group = "project" if by == "day" else by
        daily = open_store().daily_totals(by=group, since=since_ts(since))  # type: ignore[arg-type]
        if as_json:
            output.json([{"day": r.pop("day"), group: r.pop("key"), **r} for r in daily])
        elif not daily:
            output.say("no spend recorded yet")
        else:
            render_chart(by, daily, tokens)
        return
    rows = open_store().spend_totals(by=by, since=since_ts(since))  # type: ignore[arg-type]
    if as_json:
        output.json([{by: r.pop("key"), **r} for r in rows])
    elif not rows:
        output.say("no spend recorded yet")
    else:
        render_totals(by, rows)


def register(app: typer.Typer) -> None:
    app.command("spend")(spend)
