"""The Typer app: each command group lives in its own module and registers itself here."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from memproxy_cli import __version__
from memproxy_cli.cli.context import ExitStatus, output


class _Group(TyperGroup):
    """Runs a command and turns the errors it raises into exit codes, in one place."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except Exception as exc:
            status = exit_status_of(exc)
            if status is None:
                raise
            output.fail(str(exc), status)


app = typer.Typer(
    cls=_Group,
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
        top_cmds,
    )

    modules = (
        daemon_cmds,
        project_cmds,
        ports_cmds,
        logs_cmds,
        spend_cmds,
        top_cmds,
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
    except KeyboardInterrupt:
        raise SystemExit(130) from None


# The one place errors become exit codes. By qualified name, so that naming an error does not
# import its module (the config model alone costs a command ~100 ms).
EXIT_STATUS: dict[str, ExitStatus] = {
    "memproxy_cli.config.ConfigError": ExitStatus.CONFIG,
    "memproxy_cli.daemon.client.DaemonUnavailable": ExitStatus.DAEMON,
    "memproxy_cli.daemon.process.StartError": ExitStatus.DAEMON,
    "memproxy_cli.daemon.process.NotMemproxy": ExitStatus.DAEMON,
    "memproxy_cli.registry.RegistryError": ExitStatus.ERROR,
    "memproxy_cli.paths.UnsafeHome": ExitStatus.ERROR,
}


def exit_status_of(exc: BaseException) -> ExitStatus | None:
    for cls in type(exc).__mro__:
        found = EXIT_STATUS.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    return None


def asks_for_help(args: list[str]) -> bool:
    """True when ARGS print help: none at all, or -h/--help before any `--`."""
    head = args[: args.index("--")] if "--" in args else args
    return not head or "--help" in head or "-h" in head
