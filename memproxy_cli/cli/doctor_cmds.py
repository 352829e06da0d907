"""`memproxy doctor`: run every check, say what is wrong and how to fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from memproxy_cli.cli.context import ExitStatus, output

if TYPE_CHECKING:
    from memproxy_cli.doctor.result import CheckResult

COLOURS = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document for scripts."),
    offline: bool = typer.Option(False, "--offline", help="Skip the upstream network probes."),
    config: str | None = typer.Option(None, "--config", help="Config file (YAML)."),
) -> None:
    """Check config, environment, daemon, ports, store, Redis, upstreams, memory and cookies.

    Exits 0 when no check fails, 1 otherwise. Example: memproxy doctor --offline
    """
    from memproxy_cli.doctor.runner import failed, run_checks

    with output.err.status("checking...") as status:
        results = run_checks(config, offline, lambda s: status.update(f"checking {s}..."))
    if as_json:
        output.json({"checks": [r.as_dict() for r in results], "ok": not failed(results)})
    else:
        _table(results)
    if failed(results):
        raise typer.Exit(int(ExitStatus.ERROR))


def _table(results: list[CheckResult]) -> None:
    from memproxy_cli.cli.data_table import DataTable, cell

    table = DataTable("check", "status")
    table.add_column("found", overflow="fold")
    table.add_column("fix", overflow="fold")
    for r in results:
        table.add_row(r.name, cell(r.status, COLOURS[r.status]), r.found, r.fix or "")
    output.out.print(table)
