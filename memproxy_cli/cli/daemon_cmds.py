"""`memproxy up`, `down`, `status`, `reload`: the daemon's lifecycle."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from memproxy_cli.cli.context import ExitStatus, output

if TYPE_CHECKING:
    from memproxy_cli.config import Config
    from memproxy_cli.daemon.process import DaemonInfo
    from memproxy_cli.paths import Paths


def up(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Main port (default 8764)."),
    config: str | None = typer.Option(None, "--config", help="Config file (YAML)."),
    foreground: bool = typer.Option(False, "--foreground", help="Stay attached; log to stderr."),
) -> None:
    """Start the gateway daemon and return once it answers.

    Example: memproxy up --port 8764
    """
    from memproxy_cli.config import load_config
    from memproxy_cli.daemon import process
    from memproxy_cli.paths import get_paths

    paths = get_paths()
    try:
        cfg = load_config(config)
        if host is not None:
            cfg.server.host = host
        if port is not None:
            cfg.server.port = port
        source = cfg.source
        cfg = type(cfg).model_validate(cfg.model_dump(exclude={"source"}))  # re-check host/key rule
        cfg.source = source  # `status` shows which file the daemon runs on
    except ValueError as exc:
        output.fail(_override_problem(exc), ExitStatus.CONFIG)
    problem = cfg.server.master_key_problem()
    if problem:
        output.fail(problem, ExitStatus.CONFIG)
    _warn_misplaced(config)
    running = process.read_info(paths)
    if running is not None:
        output.say(f"memproxy is already running at {running.url} (pid {running.pid})")
        typer.echo(running.url)
        return
    if foreground:
        from memproxy_cli.daemon.server import run_foreground

        raise typer.Exit(run_foreground(cfg, config, to_stderr=True))
    info = start_daemon(paths, cfg, config)
    output.say(f"memproxy {info.version} is up (pid {info.pid}); logs: {paths.daemon_log}")
    typer.echo(info.url)


def start_daemon(paths: Paths, config: Config, config_file: str | None) -> DaemonInfo:
    """Fork the daemon and wait, with a spinner, until it answers (exit 4 if it does not)."""
    from memproxy_cli.daemon import process

    try:
        pid = process.spawn(paths, config, config_file)
        with output.err.status("starting memproxy..."):
            return process.wait_ready(paths, pid)
    except process.StartError as exc:
        output.fail(f"memproxy did not start:\n{exc}", ExitStatus.DAEMON)


def _warn_misplaced(explicit: str | None) -> None:
    from memproxy_cli.config_file import misplaced_configs
    from memproxy_cli.paths import get_paths

    for path in misplaced_configs(explicit):
        output.say(
            f"[yellow]warning:[/] {path} is not read; memproxy reads "
            f"{get_paths().default_config} (or --config / MEMPROXY_CONFIG)"
        )


def _override_problem(exc: ValueError) -> str:
    """The pydantic messages of a failed --host/--port override, without its URL footer."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    messages = [str(e["msg"]).removeprefix("Value error, ") for e in errors()]
    return "invalid server settings: " + "; ".join(messages)


def down() -> None:
    """Stop the daemon after in-flight requests finish.

    Example: memproxy down
    """
    from memproxy_cli.daemon import process
    from memproxy_cli.paths import get_paths

    paths = get_paths()
    with output.err.status("draining and stopping memproxy..."):
        stopped = process.stop(paths)
    output.say("memproxy stopped" if stopped else "memproxy is not running")


def status(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Show the running daemon: pid, URL, uptime, listeners, version, deployments in cooldown.

    Example: memproxy status --json
    """
    from memproxy_cli import __version__
    from memproxy_cli.daemon import process
    from memproxy_cli.paths import get_paths

    paths = get_paths()
    info = process.read_info(paths)
    if info is None:
        if json_out:
            output.json({"running": False, "cli_version": __version__})
        else:
            output.say("memproxy is not running (start it with `memproxy up`)")
        raise typer.Exit(int(ExitStatus.DAEMON))
    from memproxy_cli.daemon import client

    try:
        _, data = client.call(paths, "GET", "/status", timeout=5)
    except client.DaemonUnavailable:
        data = {**info.raw, "uptime_s": round(time.time() - info.started_at, 3)}
    data = {"running": True, **data, "cli_version": __version__}
    if json_out:
        output.json(data)
        return
    listeners = (
        ", ".join(f"{x['project']}:{x['port']}" for x in data.get("listeners", [])) or "none"
    )
    config = data.get("config") or f"built-in defaults (no file at {paths.default_config})"
    text = (
        f"memproxy {data['version']} running at {data['url']}\n"
        f"  pid       {data['pid']}\n"
        f"  uptime    {_duration(float(data['uptime_s']))}\n"
        f"  config    {config}\n"
        f"  listeners {listeners}"
    )
    cooldowns = data.get("cooldowns") or []
    if cooldowns:
        from memproxy_cli.cli.sessions_cmds import cooldown_text

        text += "\n  cooldowns " + "\n            ".join(cooldown_text(c) for c in cooldowns)
    output.print(text)


def reload() -> None:
    """Re-read the config file; a bad config keeps the running one and says why.

    Example: memproxy reload
    """
    from memproxy_cli.daemon import client
    from memproxy_cli.paths import get_paths

    code, data = client.call(get_paths(), "POST", "/reload")
    if code != 200:
        output.fail(
            f"config not reloaded, the running one stays:\n{data.get('error')}", ExitStatus.CONFIG
        )
    output.say("config reloaded")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(reload)
