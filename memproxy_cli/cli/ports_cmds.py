"""`memproxy ports`: every registered project, its port and who holds that port now."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from memproxy_cli.cli.context import output

if TYPE_CHECKING:
    from memproxy_cli.registry import Entry, PortState


def register(app: typer.Typer) -> None:
    app.command("ports")(ports)


def ports(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list for scripts."),
) -> None:
    """List project ports and whether each is listening, free, or taken by another process.

    Example: memproxy ports --json
    """
    from memproxy_cli.paths import get_paths
    from memproxy_cli.registry import PortRegistry, port_states, read_pidfile

    paths = get_paths()
    entries = PortRegistry(paths).entries()
    states = port_states([e.port for e in entries], read_pidfile(paths.pidfile))
    rows = list(zip(entries, states, strict=True))
    if as_json:
        output.json([_as_dict(e, s) for e, s in rows])
    elif not rows:
        output.say("No projects have a port yet; run `memproxy attach [PROJECT]`.")
    else:
        _table(rows)


def _as_dict(entry: Entry, state: PortState) -> dict[str, Any]:
    return {
        "project": entry.project,
        "port": entry.port,
        "state": state.state,
        "pid": state.pid,
        "process": state.process,
    }


def _table(rows: list[tuple[Entry, PortState]]) -> None:
    from memproxy_cli.cli.data_table import DataTable, cell

    colours = {"listening": "green", "not listening": "yellow", "taken": "red"}
    table = DataTable("project", "port", "state")
    for entry, state in rows:
        table.add_row(entry.project, str(entry.port), cell(state.label, colours[state.state]))
    output.out.print(table)
