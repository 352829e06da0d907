"""One place for output: data to stdout, talk to stderr, JSON for scripts, exit codes."""

from __future__ import annotations

import enum
import json
import os
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console


class ExitStatus(enum.IntEnum):
    """Exit codes of every command (documented in docs/cli.md)."""

    OK = 0
    ERROR = 1  # the command ran and found a failure (doctor: a check failed)
    USAGE = 2  # bad arguments or options
    CONFIG = 3  # the config file is invalid
    DAEMON = 4  # the daemon is not running or did not answer
    NOT_FOUND = 5  # the named project or memory does not exist


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class Output:
    """stdout for data, stderr for diagnostics; colours off when not a TTY or NO_COLOR."""

    @cached_property
    def out(self) -> Console:
        from rich.console import Console

        return Console(no_color=_no_color(), highlight=False, soft_wrap=True)

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, no_color=_no_color(), highlight=False, soft_wrap=True)

    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def json_line(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()

    def say(self, message: str) -> None:
        self.err.print(message)

    def fail(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> NoReturn:
        self.err.print(f"[bold red]error:[/] {message}")
        raise typer.Exit(int(status))


output = Output()
