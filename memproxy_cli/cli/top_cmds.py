"""`memproxy top`: a live view of what the gateway does, from the daemon's memory (no store)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import typer

from memproxy_cli.cli.context import ExitStatus, output

_QUIT = (b"q", b"Q", b"\x03", b"\x04")


def _fetcher() -> Callable[[], dict[str, Any]]:
    from memproxy_cli.daemon import client
    from memproxy_cli.paths import get_paths

    paths = get_paths()

    def fetch() -> dict[str, Any]:
        status, data = client.call(paths, "GET", "/live", timeout=5)  # DaemonUnavailable: exit 4
        if status != 200 or not isinstance(data, dict):
            problem = data.get("error") if isinstance(data, dict) else data
            output.fail(f"the daemon answered {status}: {problem}", ExitStatus.DAEMON)
        return data

    return fetch


def top(
    interval: float = typer.Option(1.0, "--interval", "-i", min=0.1, help="Seconds per refresh."),
    count: int | None = typer.Option(
        None,
        "--count",
        "-n",
        min=1,
        help="Frames to show, then exit (default: until q on a terminal, one frame otherwise).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one snapshot as JSON and exit."),
) -> None:
    """Watch requests live: rate, latency, errors, tokens, cost per project and client.

    Example: memproxy top --interval 2
    """
    fetch = _fetcher()
    if as_json:
        output.json(fetch())
        return
    from memproxy_cli.cli import top_view

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        frames = count or 1
        for i in range(frames):
            if i:
                time.sleep(interval)
                sys.stdout.write("\n")
            sys.stdout.write(top_view.plain_text(fetch()) + "\n")
            sys.stdout.flush()
        return
    _watch(fetch, interval, count)


def _watch(fetch: Callable[[], dict[str, Any]], interval: float, count: int | None) -> None:
    """Redraw every INTERVAL on the terminal's alternate screen until q, Ctrl-C or COUNT."""
    import select
    import termios
    import tty

    from rich.console import Console
    from rich.live import Live

    from memproxy_cli.cli import top_view

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    console = Console(highlight=False, no_color=bool(os.environ.get("NO_COLOR")))
    try:
        tty.setcbreak(fd)
        with Live(
            top_view.renderable(fetch()), console=console, screen=True, auto_refresh=False
        ) as live:
            frames = 1
            deadline = time.monotonic() + interval
            while count is None or frames < count:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if ready and os.read(fd, 1) in _QUIT:
                    break
                if time.monotonic() >= deadline:
                    live.update(top_view.renderable(fetch()), refresh=True)
                    frames += 1
                    deadline = time.monotonic() + interval
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def register(app: typer.Typer) -> None:
    app.command("top")(top)
