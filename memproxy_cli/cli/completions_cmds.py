"""`memproxy completions bash|zsh|fish`, and project-name completion for PROJECT arguments."""

from __future__ import annotations

import enum

import typer

from memproxy_cli.cli.context import ExitStatus, output

PROG_NAME = "memproxy"
COMPLETE_VAR = "_MEMPROXY_COMPLETE"


class Shell(enum.StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: str) -> str:
    """The script that wires `memproxy` into SHELL; it asks memproxy itself for candidates."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)


def enable_runtime_completion() -> None:
    """Register Typer's completion classes; the scripts speak their protocol (`complete_bash`)."""
    from typer._completion_classes import completion_init

    completion_init()


def complete_project(incomplete: str) -> list[str]:
    """Registered project names starting with INCOMPLETE; never raises (it runs on <TAB>)."""
    try:
        from memproxy_cli.paths import get_paths
        from memproxy_cli.registry import PortRegistry

        names = [entry.project for entry in PortRegistry(get_paths()).entries()]
    except Exception:
        return []
    return sorted(name for name in names if name.startswith(incomplete))


def completions(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the shell completion script for memproxy.

    Example: memproxy completions bash > ~/.local/share/bash-completion/completions/memproxy
    """
    try:
        script = completion_script(shell.value)
    except typer.Exit:
        output.fail(f"unsupported shell {shell.value!r}", ExitStatus.USAGE)
    typer.echo(script)


def register(app: typer.Typer) -> None:
    app.command("completions")(completions)
