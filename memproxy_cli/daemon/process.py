"""Start the daemon in the background, wait until it answers, and stop it with drain."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memproxy_cli.paths import Paths, open_private

if TYPE_CHECKING:
    from memproxy_cli.config import Config


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    url: str
    started_at: float
    version: str
    raw: dict[str, Any]


class StartError(Exception):
    """The daemon did not come up; the message says why."""


def read_info(paths: Paths) -> DaemonInfo | None:
    """The running daemon's info, or None when none runs (stale files are ignored)."""
    try:
        raw = json.loads(paths.daemon_info.read_text(encoding="utf-8"))
        info = DaemonInfo(
            int(raw["pid"]), str(raw["url"]), float(raw["started_at"]), str(raw["version"]), raw
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if pid_alive(info.pid) else None


def read_pid(paths: Paths) -> int | None:
    try:
        return int(paths.pidfile.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    import urllib.error  # not at the top: `memproxy status` and `ports` never need it
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def start_background(
    paths: Paths, config: Config, config_file: str | None, timeout: float = 30.0
) -> DaemonInfo:
    """Fork the daemon and wait until it answers /health."""
    return wait_ready(paths, spawn(paths, config, config_file), timeout)


def spawn(paths: Paths, config: Config, config_file: str | None) -> int:
    """Fork the daemon off this process (no second interpreter start); returns its pid.

    The child becomes a session leader with stdin from /dev/null and stdout/stderr in
    `startup.log` (which then only ever holds start-up failures); the daemon logs to its file.
    """
    paths.ensure()
    startup_log = paths.log_dir / "startup.log"
    try:
        out = open_private(startup_log, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        raise StartError(f"cannot open {startup_log}: {exc.strerror}") from None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid != 0:
        os.close(out)
    else:  # the daemon
        code = 1
        try:
            _detach(out)
            from memproxy_cli.daemon.server import run_foreground

            code = run_foreground(config, config_file)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _detach(out: int) -> None:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(devnull)
    os.close(out)


def _startup_tail(startup_log: Path) -> str:
    try:
        fd = os.open(startup_log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", "replace").strip()[-2000:]


def wait_ready(paths: Paths, pid: int, timeout: float = 30.0) -> DaemonInfo:
    """Wait for the forked daemon `pid` to answer /health; StartError if it exits first."""
    startup_log = paths.log_dir / "startup.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            tail = _startup_tail(startup_log)
            code = os.waitstatus_to_exitcode(status)
            raise StartError(tail or f"the daemon exited with status {code}")
        info = read_info(paths)
        if info is not None and info.pid == pid and health(info.url, 1.0) is not None:
            return info
        time.sleep(0.02)
    raise StartError(
        f"the daemon did not answer /health within {timeout:.0f} s (see {startup_log})"
    )


class NotMemproxy(Exception):
    """The pidfile names a live process that is not this memproxy daemon."""


def is_memproxy(paths: Paths, pid: int) -> bool:
    """True when `pid` runs memproxy: its command line says so, or our control socket names it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"memproxy" in f.read():
                return True
    except OSError:
        pass
    from memproxy_cli.daemon import client

    try:
        code, data = client.call(paths, "GET", "/status", timeout=2.0)
    except client.DaemonUnavailable:
        return False
    return code == 200 and isinstance(data, dict) and data.get("pid") == pid


def stop(paths: Paths, timeout: float = 60.0) -> bool:
    """SIGTERM the daemon (it drains), wait for it to exit; SIGKILL after the timeout.

    NotMemproxy when the pidfile names another program: a stale pidfile whose pid was reused.
    """
    pid = read_pid(paths)
    if pid is None or not pid_alive(pid):
        return False
    if not is_memproxy(paths, pid):
        raise NotMemproxy(
            f"the pidfile {paths.pidfile} names pid {pid}, which is not memproxy; "
            "not signalling it (remove the stale pidfile)"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True
