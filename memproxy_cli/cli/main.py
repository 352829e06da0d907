"""The Typer app: each command group lives in its own module and registers itself here."""

from __future__ import annotations

import os
import sys

import typer

from memproxy_cli import __version__
from memproxy_cli.cli.context import ExitStatus, output
from memproxy_cli.paths import UnsafeHome

app = typer.Typer(
    name="memproxy",
    help="Local LLM gateway with per-project memory and an honest spend log.\n\n"
    "Example: memproxy up && memproxy attach my-app",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memproxy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Local LLM gateway with per-project memory and an honest spend log."""


def _register() -> None:
    from memproxy_cli.cli import (
        completions_cmds,
        daemon_cmds,
        doctor_cmds,
        logs_cmds,
        memory_cmds,
        ports_cmds,
        project_cmds,
        sessions_cmds,
        spend_cmds,
    )

    modules = (
        daemon_cmds,
        project_cmds,
        ports_cmds,
        logs_cmds,
        spend_cmds,
        memory_cmds,
        sessions_cmds,
        doctor_cmds,
        completions_cmds,
    )
    for module in modules:
        module.register(app)


_register()


def main() -> None:
    if os.environ.get("_MEMPROXY_COMPLETE"):
        from memproxy_cli.cli.completions_cmds import enable_runtime_completion

        enable_runtime_completion()
    elif asks_for_help(sys.argv[1:]):
        from memproxy_cli.cli.help_format import import_help_formatter

        import_help_formatter()
    try:
        app(prog_name="memproxy")
    except UnsafeHome as exc:  # raised where a command first creates its directories
        output.say(f"[bold red]error:[/] {exc}")
        raise SystemExit(int(ExitStatus.ERROR)) from None


def asks_for_help(args: list[str]) -> bool:
    """True when ARGS print help: none at all, or -h/--help before any `--`."""
    head = args[: args.index("--")] if "--" in args else args
    return not head or "--help" in head or "-h" in head
