"""Start the daemon in the background, wait until it answers, and stop it with drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from memproxy_cli.paths import Paths


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
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def start_background(paths: Paths, args: list[str], timeout: float = 30.0) -> DaemonInfo:
    """Spawn `memproxy up --foreground ARGS`, detached, and wait until /health answers."""
    paths.ensure()
    startup_log = paths.log_dir / "startup.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(startup_log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memproxy_cli", "up", "--foreground", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            tail = startup_log.read_text(encoding="utf-8", errors="replace").strip()[-2000:]
            raise StartError(tail or f"the daemon exited with status {code}")
        info = read_info(paths)
        if info is not None and info.pid == proc.pid and health(info.url, 1.0) is not None:
            return info
        time.sleep(0.05)
    raise StartError(
        f"the daemon did not answer /health within {timeout:.0f} s (see {startup_log})"
    )


def stop(paths: Paths, timeout: float = 60.0) -> bool:
    """SIGTERM the daemon (it drains), wait for it to exit; SIGKILL after the timeout."""
    pid = read_pid(paths)
    if pid is None or not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True
