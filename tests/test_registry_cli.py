"""`memproxy ports` in a real subprocess: listening, not listening and taken ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from memproxy_cli.paths import Paths, get_paths

# Stands in for the daemon: holds a listening port until its stdin closes.
DAEMON = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
"""


def write_registry(paths: Paths, ports: dict[str, int]) -> None:
    projects = {
        name: {"port": port, "created_at": "2026-01-01T00:00:00+00:00"}
        for name, port in ports.items()
    }
    paths.ensure().registry.write_text(json.dumps({"version": 1, "projects": projects}), "utf-8")


def memproxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memproxy_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


@pytest.fixture
def daemon() -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DAEMON], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    yield proc.pid, port
    proc.stdin.close()
    proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def by_project(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {row["project"]: row for row in json.loads(result.stdout)}


def test_ports_json_shows_each_state(daemon: tuple[int, int]) -> None:
    daemon_pid, daemon_port = daemon
    paths = get_paths()
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        taken_port = foreign.getsockname()[1]
        idle_port = free_port()
        write_registry(paths, {"live": daemon_port, "busy": taken_port, "idle": idle_port})
        paths.pidfile.write_text(f"{daemon_pid}\n", encoding="utf-8")
        rows = by_project(memproxy("ports", "--json"))
    assert rows["live"] == {
        "project": "live",
        "port": daemon_port,
        "state": "listening",
        "pid": daemon_pid,
        "process": rows["live"]["process"],
    }
    assert rows["busy"]["state"] == "taken"
    assert rows["busy"]["pid"] == os.getpid()
    assert rows["busy"]["process"]
    assert rows["idle"] == {
        "project": "idle",
        "port": idle_port,
        "state": "not listening",
        "pid": None,
        "process": None,
    }


def test_daemon_port_without_pidfile_is_taken(daemon: tuple[int, int]) -> None:
    daemon_pid, daemon_port = daemon
    write_registry(get_paths(), {"live": daemon_port})
    rows = by_project(memproxy("ports", "--json"))
    assert (rows["live"]["state"], rows["live"]["pid"]) == ("taken", daemon_pid)


def test_ports_table_names_the_holder() -> None:
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        write_registry(get_paths(), {"busy": foreign.getsockname()[1]})
        result = memproxy("ports")
    assert result.returncode == 0, result.stderr
    assert "busy" in result.stdout
    assert f"taken by another process ({os.getpid()}" in result.stdout


def test_ports_empty_registry() -> None:
    result = memproxy("ports", "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, [])
    assert "memproxy attach" in memproxy("ports").stderr


def test_ports_corrupt_registry_fails_clearly() -> None:
    get_paths().ensure().registry.write_text("{oops", encoding="utf-8")
    result = memproxy("ports", "--json")
    assert result.returncode == 1
    assert "port registry" in result.stderr
    assert result.stdout == ""
