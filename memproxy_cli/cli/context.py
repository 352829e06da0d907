"""One place for output: data to stdout, talk to stderr, JSON for scripts, exit codes."""

from __future__ import annotations

import enum
import json
import os
import re
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


# Rich prints a string unchanged unless it holds markup (a tag such as `[bold]`, or an escaped
# `\[`), an emoji code (`:name:`; no emoji name contains "/"), a tab (expanded) or a control
# code that Rich strips. Each pattern matches a superset of those, so a string that matches none
# is written as it is, without importing Rich (about 30 ms of a command's start-up).
_MARKUP = re.compile(r"\[[a-z#/@][^\[]*?\]|\\\[")
_EMOJI_CODE = re.compile(r":[^\s:/]*:")
_REWRITTEN = frozenset("\t\a\b\v\f\r")


def printable(text: str) -> str:
    """TEXT without anything a terminal would act on: every character that is not printable
    (C0 and C1 controls such as ESC, so no OSC 52 clipboard write or cursor move; bidi
    overrides) is dropped, other whitespace becomes a space, and newlines stay (a message or a
    table cell may span lines; a newline moves no cursor outside its own text)."""
    if text.isprintable():
        return text
    kept = []
    for ch in text:
        if ch.isprintable() or ch == "\n":
            kept.append(ch)
        elif ch.isspace():
            kept.append(" ")
    return "".join(kept)


def verbatim(text: str) -> bool:
    """True when Rich would print TEXT exactly as given, so it may bypass Rich."""
    if _MARKUP.search(text) or _EMOJI_CODE.search(text):
        return False
    return _REWRITTEN.isdisjoint(text)


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

    def print(self, text: str) -> None:
        """TEXT (Rich markup) and a newline on stdout."""
        self._print(text, stderr=False)

    def say(self, message: str) -> None:
        """MESSAGE (Rich markup) and a newline on stderr."""
        self._print(message, stderr=True)

    def _print(self, text: str, stderr: bool) -> None:
        text = printable(text)
        # Once a console exists (a table, a spinner), every line goes through it, in order.
        if ("err" if stderr else "out") in self.__dict__ or not verbatim(text):
            (self.err if stderr else self.out).print(text)
            return
        stream = sys.stderr if stderr else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def fail(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> NoReturn:
        self.err.print(f"[bold red]error:[/] {printable(message)}")
        raise typer.Exit(int(status))


output = Output()
