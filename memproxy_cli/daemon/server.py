"""Run the gateway in this process until SIGTERM/SIGINT or a shutdown request."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal

from aiohttp import web

from memproxy_cli import __version__
from memproxy_cli.config import Config, ConfigError, load_config
from memproxy_cli.daemon.control import Controller, build_control_app
from memproxy_cli.daemon.logs import (
    FLUSH_INTERVAL_S,
    config_secrets,
    flush_logs,
    log_fields,
    register_secrets,
    setup_logging,
)
from memproxy_cli.gateway.app import apply_config, build_app, seed_budgets
from memproxy_cli.gateway.listeners import ListenerManager
from memproxy_cli.gateway.protocol import GatewayAppRunner
from memproxy_cli.gateway.proxy import use_log_writer
from memproxy_cli.gateway.resources import BUDGETS, LITELLM
from memproxy_cli.gateway.state import STATE
from memproxy_cli.paths import Paths, get_paths, open_private

log = logging.getLogger("memproxy.daemon")
GC_THRESHOLDS = (20_000, 20, 100)


def run_foreground(config: Config, config_file: str | None, to_stderr: bool = False) -> int:
    problem = config.server.master_key_problem()
    if problem:  # never serve without the key the config asks for
        print(f"memproxy: {problem}", flush=True)
        return 2
    os.umask(0o077)  # every file the daemon creates (stores, logs, jars) is its owner's alone
    paths = get_paths().ensure()
    paths.tighten()
    try:
        setup_logging(paths.daemon_log, config.logging.level, to_stderr=to_stderr)
    except OSError as exc:  # e.g. the log file is a symlink (opened with O_NOFOLLOW)
        print(f"memproxy: cannot open the log file {paths.daemon_log}: {exc.strerror}", flush=True)
        return 1
    register_secrets(config_secrets(config.model_dump()))
    use_log_writer(log_fields)  # the request line, without a LogRecord
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
        pass
    try:
        return asyncio.run(_serve(config, config_file, paths))
    finally:
        flush_logs()


async def _serve(config: Config, config_file: str | None, paths: Paths) -> int:
    app = build_app(config, paths)
    register_secrets([app[STATE].local_token])
    runner = GatewayAppRunner(
        app,
        header_timeout_s=config.server.header_timeout_s,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=config.server.drain_timeout_s,
    )
    await runner.setup()
    host, port = config.server.host, config.server.port
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        log.error("cannot listen", extra={"host": host, "port": port, "reason": exc.strerror})
        await runner.cleanup()
        print(f"memproxy: cannot listen on {host}:{port}: {exc.strerror}", flush=True)
        return 1
    bound = _bound_port(site) or port
    url = f"http://{_url_host(host)}:{bound}"
    state = app[STATE]
    state.main_port = bound
    stop = asyncio.Event()

    async def reload() -> str | None:
        try:
            new = load_config(config_file)
        except ConfigError as exc:
            log.warning("reload refused, keeping the running config", extra={"reason": str(exc)})
            return str(exc)
        problem = new.server.master_key_problem()
        if problem:
            log.warning("reload refused, keeping the running config", extra={"reason": problem})
            return problem
        new.server.host, new.server.port = state.config.server.host, state.config.server.port
        register_secrets(config_secrets(new.model_dump()))
        first_budgets = bool(new.budgets) and not state.config.budgets
        apply_config(app, new)
        register_secrets([state.local_token])
        budgets = app.get(BUDGETS)
        if first_budgets and budgets is not None:
            await asyncio.to_thread(seed_budgets, budgets, state)
        log.info("config reloaded", extra={"config": new.source})
        return None

    listeners = ListenerManager(runner, state, host)
    controller = Controller(app, listeners, url, reload, stop)
    control = web.AppRunner(build_control_app(controller), access_log=None)
    await control.setup()
    sock = paths.control_socket
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    old_umask = os.umask(0o177)
    try:
        await web.UnixSite(control, str(sock)).start()
    finally:
        os.umask(old_umask)
    os.chmod(sock, 0o600)
    for problem in await controller.restore_listeners():
        log.warning("listener not restored", extra={"problem": problem})
    _write_state_files(paths, url, host, bound, state.started_at)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
    litellm = app.get(LITELLM)
    if litellm is not None and state.router.always_translates():
        # Otherwise LiteLLM (~130 MB, seconds of imports) loads on the first translated request.
        litellm.start()
    # Start-up objects live for the whole run: keep full GC passes from walking them (pauses).
    gc.collect()
    gc.freeze()
    # A request allocates a few thousand objects, most freed by reference counting; at the
    # default 700 the young generation was collected every few requests, each pass walking
    # every in-flight request's objects: 0.03-0.07 ms of CPU a call at concurrency 16.
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("serving", extra={"url": url, "pid": os.getpid(), "version": __version__})
    flusher = loop.create_task(_flush_logs_every(FLUSH_INTERVAL_S))
    await stop.wait()
    flusher.cancel()
    log.info("stopping: draining in-flight requests", extra={"inflight": state.inflight})
    await runner.cleanup()
    await control.cleanup()
    _remove_state_files(paths)
    log.info("stopped")
    return 0


async def _flush_logs_every(seconds: float) -> None:
    """Lines logged at INFO wait in the file's buffer; push them out on a timer."""
    while True:
        await asyncio.sleep(seconds)
        flush_logs()


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server  # aiohttp keeps the asyncio server here
    sockets = getattr(server, "sockets", None) or []
    for s in sockets:
        return int(s.getsockname()[1])
    return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _write_state_files(paths: Paths, url: str, host: str, port: int, started_at: float) -> None:
    info = {
        "pid": os.getpid(),
        "url": url,
        "host": host,
        "port": port,
        "started_at": started_at,
        "version": __version__,
        "control_socket": str(paths.control_socket),
    }
    _atomic_write(paths.daemon_info, json.dumps(info))
    _atomic_write(paths.pidfile, f"{os.getpid()}\n")


def _atomic_write(path: os.PathLike[str] | str, text: str) -> None:
    tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_EXCL), "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _remove_state_files(paths: Paths) -> None:
    for path in (paths.pidfile, paths.daemon_info, paths.control_socket):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
